import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QpAttr as A, QpState as S, QpType, canSuspend, checkTransition } from '../../src/nic/qp-state.js';

const RC_INIT = A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS;
const RC_RTR = A.STATE | A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER;
const RC_RTS = A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC;

describe('QP state transitions (IBTA 10.3)', () => {
  it('accepts the usual RC bring-up with exactly the required attributes', () => {
    assert.equal(checkTransition(QpType.Rc, S.Reset, S.Init, RC_INIT), null);
    assert.equal(checkTransition(QpType.Rc, S.Init, S.Rtr, RC_RTR), null);
    assert.equal(checkTransition(QpType.Rc, S.Rtr, S.Rts, RC_RTS), null);
    assert.equal(checkTransition(QpType.Ud, S.Reset, S.Init, A.STATE | A.PKEY_INDEX | A.PORT | A.QKEY), null);
    assert.equal(checkTransition(QpType.Ud, S.Init, S.Rtr, A.STATE), null);
    assert.equal(checkTransition(QpType.Ud, S.Rtr, S.Rts, A.STATE | A.SQ_PSN), null);
  });

  it('refuses a transition missing any required attribute', () => {
    for (const bit of [A.AV, A.PATH_MTU, A.DEST_QPN, A.RQ_PSN, A.MAX_DEST_RD_ATOMIC, A.MIN_RNR_TIMER]) {
      assert.match(checkTransition(QpType.Rc, S.Init, S.Rtr, RC_RTR & ~bit) ?? '', /missing/);
    }
  });

  it('refuses attributes a transition does not allow, and unknown bits', () => {
    assert.match(checkTransition(QpType.Rc, S.Rts, S.Rts, A.STATE | A.DEST_QPN) ?? '', /not allowed/);
    assert.match(checkTransition(QpType.Ud, S.Reset, S.Init, A.STATE | A.PKEY_INDEX | A.PORT | A.QKEY | A.AV) ?? '', /not allowed/);
    assert.match(checkTransition(QpType.Rc, S.Rts, S.Rts, 1 << 30) ?? '', /unknown/);
  });

  it('refuses transitions IBTA does not define, allows RESET and ERR from anywhere', () => {
    assert.match(checkTransition(QpType.Rc, S.Reset, S.Rts, RC_RTS) ?? '', /no RESET -> RTS/);
    assert.match(checkTransition(QpType.Rc, S.Sqe, S.Rts, A.STATE) ?? '', /no SQE -> RTS/);
    assert.equal(checkTransition(QpType.Ud, S.Sqe, S.Rts, A.STATE), null);
    for (const from of [S.Reset, S.Init, S.Rtr, S.Rts, S.Sqd, S.Sqe, S.Err]) {
      assert.equal(checkTransition(QpType.Rc, from, S.Err, A.STATE), null);
      assert.equal(checkTransition(QpType.Rc, from, S.Reset, A.STATE), null);
      assert.match(checkTransition(QpType.Rc, from, S.Reset, A.STATE | A.QKEY) ?? '', /no attributes/);
    }
  });

  it('keeps SUSPENDED out of the guest-visible state machine', () => {
    assert.match(checkTransition(QpType.Rc, S.Rts, S.Suspended, A.STATE) ?? '', /suspend/);
    assert.match(checkTransition(QpType.Rc, S.Suspended, S.Rts, A.STATE) ?? '', /suspend/);
    assert.deepEqual([S.Reset, S.Init, S.Rtr, S.Rts, S.Sqd, S.Sqe, S.Err].filter(canSuspend), [S.Rtr, S.Rts, S.Sqd, S.Sqe]);
  });
});
