// SRQ commands (docs/device-spec.md §7.20). SRQ handles are index + 1, so 0 is never valid.
import { RdmaFeature, RdmaStatus, SrqAttr } from './abi.js';
import type { CommandContext } from './control.js';
import { lowestFree } from './core.js';
import { DeviceError, invalidArg, notSupported } from './errors.js';
import { WorkQueue } from './work-queue.js';

function checkLimit(hasEventq: boolean, limit: number, maxWr: number): void {
  if (limit !== 0 && limit >= maxWr) throw invalidArg(`srq_limit ${limit} is not below max_wr ${maxWr}`);
  if (limit !== 0 && !hasEventq) throw notSupported('an SRQ limit needs VIRTIO_RDMA_F_EVENTQ');
}

export function handleCreateSrq({ core, req, resp }: CommandContext): void {
  const cfg = core.config;
  const maxWr = req.getUint32(4, true);
  const maxSge = req.getUint32(8, true);
  const limit = req.getUint32(12, true);
  if (maxWr < 1 || maxWr > cfg.maxSrqWr) throw invalidArg(`max_wr ${maxWr} is not in 1..${cfg.maxSrqWr}`);
  if (maxSge < 1 || maxSge > cfg.maxSrqSge) throw invalidArg(`max_sge ${maxSge} is not in 1..${cfg.maxSrqSge}`);
  checkLimit(core.has(RdmaFeature.EVENTQ), limit, maxWr);
  const pd = core.pd(req.getUint32(0, true));
  const index = lowestFree(core.srqs);
  if (index < 0) throw new DeviceError(RdmaStatus.NoResources, 'no free SRQ index');
  const verbsSrq = core.verbs.createSrq(pd.verbsPd, maxWr, maxSge, limit);
  const vq = core.transport.map.srq(index);
  core.srqs[index] = { handle: index + 1, index, verbsSrq, pd: pd.handle, maxWr, maxSge, limit, error: false, wq: new WorkQueue(vq, false) };
  core.transport.setPending(vq);
  resp.setUint32(0, index + 1, true);
  resp.setUint32(4, index, true);
  resp.setUint32(8, maxWr, true);
  resp.setUint32(12, maxSge, true);
}

export function handleModifySrq({ core, req }: CommandContext): void {
  const mask = req.getUint32(4, true);
  const limit = req.getUint32(12, true);
  if ((mask & ~(SrqAttr.MAX_WR | SrqAttr.LIMIT)) !== 0) throw invalidArg(`unknown attr_mask bits 0x${mask.toString(16)}`);
  if (mask & SrqAttr.MAX_WR) throw notSupported('resizing an SRQ');
  const srq = core.srq(req.getUint32(0, true));
  if (mask & SrqAttr.LIMIT) {
    checkLimit(core.has(RdmaFeature.EVENTQ), limit, srq.maxWr);
    core.verbs.modifySrq(srq.verbsSrq, limit);
    srq.limit = limit;
  }
}

export function handleQuerySrq({ core, req, resp }: CommandContext): void {
  const srq = core.srq(req.getUint32(0, true));
  resp.setUint32(0, srq.maxWr, true);
  resp.setUint32(4, srq.maxSge, true);
  resp.setUint32(8, srq.limit, true);
}

export function handleDestroySrq({ core, datapath, req }: CommandContext): void {
  const srq = core.srq(req.getUint32(0, true));
  for (const qp of core.qps.values()) if (qp.srq === srq.handle) throw new DeviceError(RdmaStatus.Busy, `QP ${qp.qpn} uses SRQ ${srq.handle}`);
  core.verbs.destroySrq(srq.verbsSrq);
  core.srqs[srq.index] = null;
  datapath.returnAll(srq.wq);
}
