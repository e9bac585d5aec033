// What a socket link counts, for logs, tests and the migration report. Plain data, so a snapshot
// can be compared, printed as JSON, or summed over links.

export interface LinkCounters {
  /** Datagrams the kernel took, and their bytes (BTH through ICRC). */
  packetsSent: number;
  bytesSent: number;
  /** Datagrams delivered to the link, and their bytes. */
  packetsReceived: number;
  bytesReceived: number;
  /** Sends the kernel refused (ENOBUFS, EPERM from a firewall, ...): lost like on a wire. */
  sendErrors: number;
  /** Sends dropped before the kernel: link closed, or too many still queued. */
  sendDropped: number;
}

export function zeroCounters(): LinkCounters {
  return { packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, sendErrors: 0, sendDropped: 0 };
}

/** A link that batches its socket calls (sendmmsg/recvmmsg) counts those too. */
export interface BatchedLinkCounters extends LinkCounters {
  /** Datagrams longer than a receive slot: cut by the kernel, so dropped. */
  receiveTruncated: number;
  /** recvmmsg/sendmmsg calls: packets per call is the batching achieved. */
  recvCalls: number;
  sendCalls: number;
}

export function zeroBatchedCounters(): BatchedLinkCounters {
  return { ...zeroCounters(), receiveTruncated: 0, recvCalls: 0, sendCalls: 0 };
}
