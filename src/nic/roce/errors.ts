// The RoCE transport layer's one error type. Parsing never throws: a packet that fails a check
// comes back as a RoceError value, and the caller drops or NAKs it as IBTA says. Building throws
// RoceError, since a bad field there is the caller's bug, not the network's.

/** Why a packet, frame or capture was refused. */
export enum RoceErrorCode {
  /** Shorter than a BTH plus ICRC, or than the headers its opcode needs. */
  Truncated = 'TRUNCATED',
  /** The BTH opcode is not in the opcode table (reserved, or a transport vrdma does not speak). */
  UnknownOpcode = 'UNKNOWN_OPCODE',
  /** BTH TVer is not 0 (IBTA 9.2.1: such packets are silently dropped). */
  BadVersion = 'BAD_VERSION',
  /** Pad count is larger than the bytes after the headers, or non-zero where no pad may be. */
  BadPad = 'BAD_PAD',
  /** Length not a multiple of 4, or a payload on an opcode that carries none. */
  BadLength = 'BAD_LENGTH',
  /** The invariant CRC does not match (IBTA annex A17): the packet is dropped. */
  BadIcrc = 'BAD_ICRC',
  /** A field handed to a builder is missing or out of range. */
  BadField = 'BAD_FIELD',
  /** The output buffer is too small. */
  NoSpace = 'NO_SPACE',
  /** The Ethernet/IPv4/UDP encapsulation is not RoCE v2 (wrong type, port, lengths, options). */
  BadFrame = 'BAD_FRAME',
  /** A pcap capture file is malformed or not Ethernet. */
  BadCapture = 'BAD_CAPTURE',
}

const MESSAGES: Record<RoceErrorCode, string> = {
  [RoceErrorCode.Truncated]: 'packet shorter than its headers',
  [RoceErrorCode.UnknownOpcode]: 'unknown opcode',
  [RoceErrorCode.BadVersion]: 'transport header version is not 0',
  [RoceErrorCode.BadPad]: 'bad pad count',
  [RoceErrorCode.BadLength]: 'bad packet length',
  [RoceErrorCode.BadIcrc]: 'ICRC mismatch',
  [RoceErrorCode.BadField]: 'bad header field',
  [RoceErrorCode.NoSpace]: 'output buffer too small',
  [RoceErrorCode.BadFrame]: 'not a RoCE v2 frame',
  [RoceErrorCode.BadCapture]: 'malformed capture file',
};

export class RoceError extends Error {
  override readonly name = 'RoceError';
  constructor(readonly code: RoceErrorCode, detail: string) {
    super(`${code}: ${MESSAGES[code]}: ${detail}`);
  }
}
