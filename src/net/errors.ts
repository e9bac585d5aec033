// The net layer's one error type. Opening a link and reading or writing capture files throw
// NetError; sending never does (a packet the network cannot take is lost and counted, R8).

/** Why a net-layer operation failed. */
export enum NetErrorCode {
  /** Another socket holds the address and port (EADDRINUSE): the VM's address has not moved yet. */
  AddressInUse = 'ADDRESS_IN_USE',
  /** The address is not one of this host's (EADDRNOTAVAIL): nothing routes it here. */
  AddressNotAvailable = 'ADDRESS_NOT_AVAILABLE',
  /** The process may not bind there (EACCES, EPERM: a privileged port, a sandbox). */
  PermissionDenied = 'PERMISSION_DENIED',
  /** Not a dotted IPv4 address, or a port outside 0..65535. */
  InvalidAddress = 'INVALID_ADDRESS',
  /** The link was closed, or is being opened twice. */
  Closed = 'CLOSED',
  /** Any other socket failure; the detail names the system error. */
  Socket = 'SOCKET',
  /** The batched path needs the native addon, which is not available (the detail says why). */
  NativeUnavailable = 'NATIVE_UNAVAILABLE',
  /** A capture file is malformed: bad magic, not Ethernet, cut short, absurd record length. */
  BadCapture = 'BAD_CAPTURE',
  /** A capture file could not be opened, read or written. */
  CaptureIo = 'CAPTURE_IO',
}

const MESSAGES: Record<NetErrorCode, string> = {
  [NetErrorCode.AddressInUse]: 'address already in use',
  [NetErrorCode.AddressNotAvailable]: 'address not available on this host',
  [NetErrorCode.PermissionDenied]: 'permission denied',
  [NetErrorCode.InvalidAddress]: 'invalid address',
  [NetErrorCode.Closed]: 'link closed',
  [NetErrorCode.Socket]: 'socket error',
  [NetErrorCode.NativeUnavailable]: 'native addon unavailable',
  [NetErrorCode.BadCapture]: 'malformed capture file',
  [NetErrorCode.CaptureIo]: 'capture file I/O failed',
};

export class NetError extends Error {
  override readonly name = 'NetError';
  constructor(readonly code: NetErrorCode, detail: string, options?: { cause?: unknown }) {
    super(`${code}: ${MESSAGES[code]}: ${detail}`, options);
  }
}

/** The NetError for a failed bind/socket system error (a Node or native-addon error with `code`). */
export function bindError(err: unknown, where: string): NetError {
  const sys = (err as { code?: unknown }).code;
  const text = err instanceof Error ? err.message : String(err);
  switch (sys) {
    case 'EADDRINUSE':
      return new NetError(NetErrorCode.AddressInUse, `${where} is bound by another socket`, { cause: err });
    case 'EADDRNOTAVAIL':
      return new NetError(NetErrorCode.AddressNotAvailable, `${where}: no local interface has this address`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new NetError(NetErrorCode.PermissionDenied, `${where}: ${text}`, { cause: err });
    default:
      return new NetError(NetErrorCode.Socket, `${where}: ${text}`, { cause: err });
  }
}
