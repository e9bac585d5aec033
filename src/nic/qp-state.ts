// QP states and the IBTA rules for moving between them (IBTA vol. 1, 10.3 and 11.2.5.2):
// which transitions exist and which attributes each one requires or allows, per QP type.
// SUSPENDED is vrdma's host-side state for migration (R6); the guest never sees it.

export enum QpState {
  Reset = 0,
  Init = 1,
  Rtr = 2,
  Rts = 3,
  Sqd = 4,
  Sqe = 5,
  Err = 6,
  /** Host-side only: sends nothing, answers requests with RNR NAK or drops them (R6). */
  Suspended = 7,
}

export const QP_STATE_NAMES: Record<QpState, string> = {
  [QpState.Reset]: 'RESET',
  [QpState.Init]: 'INIT',
  [QpState.Rtr]: 'RTR',
  [QpState.Rts]: 'RTS',
  [QpState.Sqd]: 'SQD',
  [QpState.Sqe]: 'SQE',
  [QpState.Err]: 'ERR',
  [QpState.Suspended]: 'SUSPENDED',
};

export enum QpType {
  Rc = 2,
  Ud = 4,
}

/** Attribute mask bits, numbered as libibverbs' enum ibv_qp_attr_mask. */
export const QpAttr = {
  STATE: 1 << 0,
  CUR_STATE: 1 << 1,
  EN_SQD_ASYNC_NOTIFY: 1 << 2,
  ACCESS_FLAGS: 1 << 3,
  PKEY_INDEX: 1 << 4,
  PORT: 1 << 5,
  QKEY: 1 << 6,
  AV: 1 << 7,
  PATH_MTU: 1 << 8,
  TIMEOUT: 1 << 9,
  RETRY_CNT: 1 << 10,
  RNR_RETRY: 1 << 11,
  RQ_PSN: 1 << 12,
  MAX_QP_RD_ATOMIC: 1 << 13,
  ALT_PATH: 1 << 14,
  MIN_RNR_TIMER: 1 << 15,
  SQ_PSN: 1 << 16,
  MAX_DEST_RD_ATOMIC: 1 << 17,
  PATH_MIG_STATE: 1 << 18,
  CAP: 1 << 19,
  DEST_QPN: 1 << 20,
} as const;

/** Every mask bit vrdma knows; others are refused. */
export const QP_ATTR_ALL = Object.values(QpAttr).reduce((a, b) => a | b, 0);

interface Rule {
  required: Record<QpType, number>;
  optional: Record<QpType, number>;
}

const A = QpAttr;
const none: Record<QpType, number> = { [QpType.Rc]: 0, [QpType.Ud]: 0 };
const rule = (rc: [number, number], ud: [number, number]): Rule => ({
  required: { [QpType.Rc]: rc[0], [QpType.Ud]: ud[0] },
  optional: { [QpType.Rc]: rc[1], [QpType.Ud]: ud[1] },
});

const RTS_OPTIONAL_RC = A.CUR_STATE | A.ACCESS_FLAGS | A.ALT_PATH | A.PATH_MIG_STATE | A.MIN_RNR_TIMER;
const RTS_OPTIONAL_UD = A.CUR_STATE | A.QKEY;

/** TRANSITIONS[from][to]: the rule for that transition, absent when IBTA forbids it. */
const TRANSITIONS: Partial<Record<QpState, Partial<Record<QpState, Rule>>>> = {
  [QpState.Reset]: {
    [QpState.Init]: rule([A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS, 0], [A.PKEY_INDEX | A.PORT | A.QKEY, 0]),
  },
  [QpState.Init]: {
    [QpState.Init]: rule([0, A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS], [0, A.PKEY_INDEX | A.PORT | A.QKEY]),
    [QpState.Rtr]: rule(
      [A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER, A.ALT_PATH | A.ACCESS_FLAGS | A.PKEY_INDEX],
      [0, A.PKEY_INDEX | A.QKEY],
    ),
  },
  [QpState.Rtr]: {
    [QpState.Rts]: rule(
      [A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC, RTS_OPTIONAL_RC],
      [A.SQ_PSN, RTS_OPTIONAL_UD],
    ),
  },
  [QpState.Rts]: {
    [QpState.Rts]: rule([0, RTS_OPTIONAL_RC], [0, RTS_OPTIONAL_UD]),
    [QpState.Sqd]: rule([0, A.EN_SQD_ASYNC_NOTIFY], [0, A.EN_SQD_ASYNC_NOTIFY]),
  },
  [QpState.Sqd]: {
    [QpState.Rts]: rule([0, RTS_OPTIONAL_RC], [0, RTS_OPTIONAL_UD]),
    [QpState.Sqd]: rule(
      [
        0,
        A.CUR_STATE | A.AV | A.ALT_PATH | A.ACCESS_FLAGS | A.PKEY_INDEX | A.PORT | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY |
          A.MAX_QP_RD_ATOMIC | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER | A.PATH_MIG_STATE,
      ],
      [0, A.PKEY_INDEX | A.QKEY],
    ),
  },
  // SQE exists for UD (and UC); an RC send error moves the QP to ERR instead.
  [QpState.Sqe]: {
    [QpState.Rts]: rule([0, 0], [0, A.CUR_STATE | A.QKEY]),
  },
};

/**
 * Why a modify from `from` to `to` with `mask` is not allowed, or null if it is. Moves to RESET
 * and ERR are allowed from every state with no attributes, SUSPENDED included (a QP can always
 * be torn down). Otherwise SUSPENDED is entered and left only through suspendQp/resumeQp, never
 * by a guest's modify.
 */
export function checkTransition(type: QpType, from: QpState, to: QpState, mask: number): string | null {
  if ((mask & ~QP_ATTR_ALL) !== 0) return `unknown attribute mask bits 0x${(mask & ~QP_ATTR_ALL).toString(16)}`;
  const attrs = mask & ~(A.STATE | A.CUR_STATE);
  if (to === QpState.Reset || to === QpState.Err) {
    return attrs === 0 ? null : `moving to ${QP_STATE_NAMES[to]} takes no attributes`;
  }
  if (from === QpState.Suspended || to === QpState.Suspended) return 'SUSPENDED is entered and left only by suspend/resume';
  const r = TRANSITIONS[from]?.[to];
  if (!r || (type === QpType.Rc && from === QpState.Sqe)) {
    return `IBTA has no ${QP_STATE_NAMES[from]} -> ${QP_STATE_NAMES[to]} transition for ${QpType[type]} QPs`;
  }
  const required = r.required[type] ?? none[type];
  const allowed = required | r.optional[type] | A.CUR_STATE;
  if ((mask & required) !== required) return `missing attributes 0x${(required & ~mask).toString(16)}`;
  if ((attrs & ~allowed) !== 0) return `attributes 0x${(attrs & ~allowed).toString(16)} not allowed in this transition`;
  return null;
}

/** States from which a QP can be suspended for migration (R6). */
export function canSuspend(state: QpState): boolean {
  return state === QpState.Rtr || state === QpState.Rts || state === QpState.Sqd || state === QpState.Sqe;
}
