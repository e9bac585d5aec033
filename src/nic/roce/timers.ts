// The two RC transport timers (IBTA vol. 1 9.7): the local ACK timeout a requester waits for
// a response before retrying, and the RNR NAK timer a responder names when it has no receive WQE.

/**
 * Local ACK timeout for the 5-bit QP attribute: 4.096 us * 2^timeout; 0 means the
 * requester waits forever, returned as null.
 */
export function localAckTimeoutUs(timeout: number): number | null {
  if (timeout === 0) return null;
  return 4.096 * 2 ** timeout;
}

/**
 * The interval before the next retransmission after `consecutive` local ACK timeouts in a row
 * without progress: the QP's timeout, doubled for each of them (as TCP backs off its RTO, RFC
 * 6298 5.5), never beyond `ceilingUs` and never below the timeout itself. The first timeout
 * keeps the attribute's value, so one lost packet is resent as soon as the guest asked; only a
 * peer that stays silent is given longer. A soft device's peer is a process the host schedules,
 * and on a loaded host it is descheduled for tens of milliseconds at a time: with a 4 ms timeout
 * and retry_cnt 7, without backoff such a pause reads as a dead peer (RETRY_EXC_ERR), and every
 * timeout during it piles another go-back-N on the peer's socket. Null when the timer is off.
 */
export function retryIntervalUs(timeout: number, consecutive: number, ceilingUs: number): number | null {
  const base = localAckTimeoutUs(timeout);
  if (base === null) return null;
  return Math.max(base, Math.min(base * 2 ** Math.min(consecutive, 31), ceilingUs));
}

/** The RNR NAK timer field (IBTA 9.7.5.2.8 table 45), in microseconds, indexed by its code. */
export const RNR_TIMER_US: readonly number[] = Object.freeze([
  655360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840, 5120, 7680, 10240,
  15360, 20480, 30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520,
]);

export function rnrTimerUs(code: number): number {
  return RNR_TIMER_US[code & 0x1f];
}

/** rnr_retry 7 means "retry forever" (IBTA 9.7.5.2.8); retry_cnt has no such value. */
export const RNR_RETRY_INFINITE = 7;
