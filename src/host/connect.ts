// Bringing a guest QP up to RTS against a peer on another host, as an application does after
// exchanging addresses out of band (rdma-core's pingpong examples, rdma_cm): RESET -> INIT -> RTR
// -> RTS for RC with the peer's GID (its IPv4 address, R7), QPN and starting PSN; INIT -> RTR ->
// RTS with a Q_Key for UD. The defaults are the values rdma-core's rc_pingpong uses.
import { AccessFlag, AttrMask } from '../device/abi.js';
import { ahAttr } from '../guest/rdma/device.js';
import type { GuestQp } from '../guest/rdma/objects.js';
import { QpState } from '../nic/qp-state.js';
import { PathMtu } from '../nic/types.js';

/** What one end tells the other: its address (GID) and QP. */
export interface QpEndpoint {
  ip: string;
  qpn: number;
  psn: number;
}

export interface RcAttributes {
  pathMtu: PathMtu;
  /** Remote rights this QP grants (AccessFlag bits). */
  access: number;
  minRnrTimer: number;
  timeout: number;
  retryCnt: number;
  rnrRetry: number;
  maxRdAtomic: number;
  maxDestRdAtomic: number;
  sgidIndex: number;
}

export const RC_PINGPONG_ATTRIBUTES: RcAttributes = {
  pathMtu: PathMtu.Mtu1024,
  access: AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC,
  minRnrTimer: 12,
  timeout: 14,
  retryCnt: 7,
  rnrRetry: 7,
  maxRdAtomic: 1,
  maxDestRdAtomic: 1,
  sgidIndex: 0,
};

/** RESET -> INIT (pingpong's order: the QP is in INIT before its receives are posted). */
export async function rcToInit(qp: GuestQp, attrs: Partial<RcAttributes> = {}): Promise<void> {
  const a = { ...RC_PINGPONG_ATTRIBUTES, ...attrs };
  await qp.modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS | AttrMask.PKEY_INDEX | AttrMask.PORT, {
    qpState: QpState.Init, qpAccessFlags: a.access & ~AccessFlag.LOCAL_WRITE, pkeyIndex: 0, portNum: 1,
  });
}

/** INIT -> RTR -> RTS towards `remote`, sending from `localPsn`. */
export async function rcToRts(qp: GuestQp, localPsn: number, remote: QpEndpoint, attrs: Partial<RcAttributes> = {}): Promise<void> {
  const a = { ...RC_PINGPONG_ATTRIBUTES, ...attrs };
  await qp.modify(
    AttrMask.STATE | AttrMask.AV | AttrMask.PATH_MTU | AttrMask.DEST_QPN | AttrMask.RQ_PSN | AttrMask.MAX_DEST_RD_ATOMIC | AttrMask.MIN_RNR_TIMER,
    {
      qpState: QpState.Rtr, ahAttr: ahAttr(remote.ip, a.sgidIndex, { hopLimit: 1 }), pathMtu: a.pathMtu, destQpNum: remote.qpn,
      rqPsn: remote.psn, maxDestRdAtomic: a.maxDestRdAtomic, minRnrTimer: a.minRnrTimer,
    },
  );
  await qp.modify(
    AttrMask.STATE | AttrMask.SQ_PSN | AttrMask.TIMEOUT | AttrMask.RETRY_CNT | AttrMask.RNR_RETRY | AttrMask.MAX_QP_RD_ATOMIC,
    { qpState: QpState.Rts, sqPsn: localPsn, timeout: a.timeout, retryCnt: a.retryCnt, rnrRetry: a.rnrRetry, maxRdAtomic: a.maxRdAtomic },
  );
}

/** A whole RC connection: INIT, then RTR and RTS. */
export async function connectRc(qp: GuestQp, localPsn: number, remote: QpEndpoint, attrs: Partial<RcAttributes> = {}): Promise<void> {
  await rcToInit(qp, attrs);
  await rcToRts(qp, localPsn, remote, attrs);
}

/** A UD QP ready to send and receive datagrams with Q_Key `qkey`. */
export async function udToRts(qp: GuestQp, qkey: number, sqPsn = 0): Promise<void> {
  await qp.modify(AttrMask.STATE | AttrMask.QKEY | AttrMask.PKEY_INDEX | AttrMask.PORT, { qpState: QpState.Init, qkey, pkeyIndex: 0, portNum: 1 });
  await qp.modify(AttrMask.STATE, { qpState: QpState.Rtr });
  await qp.modify(AttrMask.STATE | AttrMask.SQ_PSN, { qpState: QpState.Rts, sqPsn });
}
