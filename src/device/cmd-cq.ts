// CQ commands (docs/device-spec.md §7.4, §7.5, §7.17).
import { NotifyFlag, RdmaStatus } from './abi.js';
import type { CommandContext } from './control.js';
import { lowestFree } from './core.js';
import { DeviceCq } from './cq.js';
import { DeviceError, invalidArg } from './errors.js';

export function handleCreateCq({ core, req, resp }: CommandContext): void {
  const depth = req.getUint32(0, true);
  if (req.getUint32(4, true) !== 0) throw invalidArg('CREATE_CQ flags are reserved');
  if (depth < 1 || depth > core.config.maxCqe) throw invalidArg(`cqe ${depth} is not in 1..${core.config.maxCqe}`);
  const index = lowestFree(core.cqs);
  if (index < 0) throw new DeviceError(RdmaStatus.NoResources, 'no free CQ index');
  // Every provider work request is signalled (the device needs each one to retire its chain), so
  // the provider CQ is as deep as the provider allows; the device drains it on every callback.
  const verbsCq = core.verbs.createCq(core.verbs.limits.maxCqe);
  const cq = new DeviceCq(index, depth, verbsCq);
  core.cqs[index] = cq;
  core.cqByVerbs.set(verbsCq, cq);
  resp.setUint32(0, index, true);
  resp.setUint32(4, core.transport.map.cq(index), true);
  resp.setUint32(8, depth, true);
}

export function handleDestroyCq({ core, req }: CommandContext): void {
  const cq = core.cq(req.getUint32(0, true));
  if (cq.users.size > 0) throw new DeviceError(RdmaStatus.Busy, `CQ ${cq.index} is used by ${cq.users.size} QPs`);
  core.verbs.destroyCq(cq.verbsCq);
  core.cqs[cq.index] = null;
  core.cqByVerbs.delete(cq.verbsCq);
  cq.fail();
  const vq = core.transport.map.cq(cq.index);
  const queue = core.transport.queue(vq);
  if (queue !== null) cq.returnBuffers(queue, () => core.publishLater(vq));
}

export function handleReqNotifyCq({ core, req, resp }: CommandContext): void {
  const flags = req.getUint32(4, true);
  if (flags !== NotifyFlag.SOLICITED && flags !== NotifyFlag.NEXT_COMPLETION) throw invalidArg(`flags ${flags}: exactly one of SOLICITED, NEXT_COMPLETION`);
  const cq = core.cq(req.getUint32(0, true));
  cq.arm(flags);
  resp.setUint32(0, cq.cqesWritten, true);
}
