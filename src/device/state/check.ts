// Everything a device state must satisfy before anything is built from it: the destination
// device presents the same config space, features and queue count; every queue's configuration
// and ring state agree with each other and with what was negotiated; every handle and index is in
// range and unique; every reference resolves, to the device's own objects or to the provider's
// (as its inspectState reports them); every buffer a held chain names is guest RAM here.
import type { ProviderStateSummary } from '../../nic/verbs.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED } from '../../virtio/queue.js';
import { badRecord, incompatible, inconsistent } from '../../state/index.js';
import type { DeviceConfig } from '../config.js';
import type { RdmaTransport } from '../transport.js';
import type { DeviceStateData, SavedChain, SavedWorkQueue } from './types.js';

const bit = (features: bigint, b: number): boolean => (features & (1n << BigInt(b))) !== 0n;

function unique(what: string, list: readonly number[], ok: (v: number) => boolean, range: string): Set<number> {
  const seen = new Set<number>();
  for (const v of list) {
    if (!ok(v)) throw incompatible(`${what} ${v} is outside ${range}`);
    if (seen.has(v)) throw inconsistent(`${what} ${v} appears twice`);
    seen.add(v);
  }
  return seen;
}

/** Device objects name distinct provider objects that the provider state holds. */
function provider(what: string, list: readonly number[], has: ReadonlySet<number>): void {
  unique(`provider ${what}`, list, () => true, '');
  for (const v of list) if (!has.has(v)) throw inconsistent(`provider ${what} ${v} is not in the provider's state`);
}

function known(what: string, v: number, set: ReadonlySet<number>, of: string): void {
  if (!set.has(v)) throw inconsistent(`${what} names ${of} ${v}, which the state does not hold`);
}

export function checkDeviceState(s: DeviceStateData, t: RdmaTransport, cfg: DeviceConfig, p: ProviderStateSummary): void {
  if (s.numQueues !== t.numQueues) throw incompatible(`${s.numQueues} virtqueues; this device has ${t.numQueues}`);
  if (s.deviceFeatures !== t.deviceFeatures) throw incompatible(`device features 0x${s.deviceFeatures.toString(16)}; this device offers 0x${t.deviceFeatures.toString(16)}`);
  const here = t.readConfig(0, s.config.length);
  if (!here.every((b, i) => b === s.config[i])) throw incompatible('the config space the driver read differs from this device\'s');
  if ((s.driverFeatures & ~s.deviceFeatures) !== 0n) throw inconsistent('the driver accepted features the device did not offer');
  const f = s.driverFeatures;
  const format = bit(f, VIRTIO_F_RING_PACKED) ? 'packed' : 'split';

  const enabled = new Map<number, number>();
  unique('virtqueue', s.queues.map((q) => q.vq), (v) => v < t.numQueues, `0..${t.numQueues - 1}`);
  for (const q of s.queues) {
    const what = `virtqueue ${q.vq}`;
    const max = t.maxQueueSize(q.vq);
    if (q.config.size > max) throw incompatible(`${what}: size ${q.config.size} above ${max}`);
    const st = q.state;
    if (st === null) continue;
    if (q.config.size < 1 || st.size !== q.config.size) throw inconsistent(`${what}: ring of ${st.size} for a queue configured with ${q.config.size}`);
    if (st.format !== format) throw inconsistent(`${what}: a ${st.format} ring where ${format} rings were negotiated`);
    const rings = st.format === 'split' ? [st.descGpa, st.availGpa, st.usedGpa] : [st.descGpa, st.driverEventGpa, st.deviceEventGpa];
    if (rings[0] !== q.config.descGpa || rings[1] !== q.config.driverGpa || rings[2] !== q.config.deviceGpa) throw inconsistent(`${what}: ring addresses differ from its configuration`);
    const indirect = st.format === 'split' ? st.indirectDesc : st.indirect;
    if (st.eventIdx !== bit(f, VIRTIO_F_EVENT_IDX) || indirect !== bit(f, VIRTIO_F_INDIRECT_DESC)) throw inconsistent(`${what}: ring features differ from the negotiated ones`);
    enabled.set(q.vq, st.size);
  }

  const gids = new Map<number, string>();
  for (const g of s.gids) {
    if (g.index >= cfg.gidTblLen) throw incompatible(`GID index ${g.index} past the table of ${cfg.gidTblLen}`);
    if (gids.has(g.index)) throw inconsistent(`GID index ${g.index} appears twice`);
    gids.set(g.index, g.ip);
  }
  if (gids.get(0) !== cfg.defaultGid) throw inconsistent(`GID 0 is ${gids.get(0) ?? 'missing'}, not the device's ${cfg.defaultGid}`);
  const providerGids = new Map(p.gids.map((g) => [g.index, g.ip]));
  for (const [index, ip] of gids) if (providerGids.get(index) !== ip) throw inconsistent(`GID ${index} ${ip} is not the provider's`);

  const a = s.allocators;
  const cursor = (what: string, v: number, max: number) => {
    if (v < 1 || v > Math.max(1, max)) throw incompatible(`${what} cursor ${v} outside [1, ${max}]`);
  };
  cursor('PD', a.pd, cfg.maxPd);
  cursor('MR', a.mr, cfg.maxMr);
  cursor('AH', a.ah, cfg.maxAh);

  const pds = unique('PD', s.pds.map((x) => x.handle), (v) => v >= 1 && v <= cfg.maxPd, `1..${cfg.maxPd}`);
  const providerPds = new Set(p.pds);
  provider('PD', s.pds.map((x) => x.verbsPd), providerPds);

  unique('MR', s.mrs.map((x) => x.handle), (v) => v >= 1 && v <= cfg.maxMr, `1..${cfg.maxMr}`);
  const keys = new Set(p.mrKeys);
  for (const mr of s.mrs) {
    const what = `MR ${mr.handle}`;
    known(what, mr.pd, pds, 'PD');
    if (!keys.has(mr.lkey) || !keys.has(mr.rkey)) throw inconsistent(`${what}: keys 0x${mr.lkey.toString(16)}/0x${mr.rkey.toString(16)} are not the provider's`);
    if ((mr.kind === 'dma') !== (mr.reg === 'all-memory')) throw inconsistent(`${what}: a ${mr.kind} MR with ${mr.reg === 'all-memory' ? 'no' : 'a'} page list`);
    if (mr.reg === 'all-memory') continue;
    const r = mr.reg;
    const pageBytes = 2 ** r.pageShift;
    if (r.length <= 0 || !Number.isSafeInteger(r.iova + r.length)) throw badRecord(`${what}: iova ${r.iova} and length ${r.length}`);
    if (r.pages.length !== Math.ceil(((r.iova % pageBytes) + r.length) / pageBytes)) throw inconsistent(`${what}: page count does not cover its range`);
    for (const page of r.pages) {
      if (page % pageBytes !== 0) throw badRecord(`${what}: page 0x${page.toString(16)} is not aligned`);
      if (t.dm.guest.tryTranslate(page, pageBytes) < 0) throw incompatible(`${what}: page 0x${page.toString(16)} is not guest RAM here`);
    }
  }

  unique('AH', s.ahs.map((x) => x.handle), (v) => v >= 1 && v <= cfg.maxAh, `1..${cfg.maxAh}`);
  provider('AH', s.ahs.map((x) => x.verbsAh), new Set(p.ahs));
  for (const ah of s.ahs) {
    known(`AH ${ah.handle}`, ah.pd, pds, 'PD');
    if (!gids.has(ah.sgidIndex)) throw inconsistent(`AH ${ah.handle}: sgid index ${ah.sgidIndex} names no GID`);
  }

  const cqs = unique('CQ index', s.cqs.map((c) => c.index), (v) => v < cfg.maxCq, `0..${cfg.maxCq - 1}`);
  provider('CQ', s.cqs.map((c) => c.verbsCq), new Set(p.cqs));
  for (const c of s.cqs) if (c.depth < 1 || c.depth > cfg.maxCqe) throw incompatible(`CQ ${c.index}: depth ${c.depth} outside 1..${cfg.maxCqe}`);

  const srqHandles = new Set(s.srqs.map((x) => x.index + 1));
  unique('SRQ index', s.srqs.map((x) => x.index), (v) => v < cfg.maxSrq, `0..${cfg.maxSrq - 1}`);
  provider('SRQ', s.srqs.map((x) => x.verbsSrq), new Set(p.srqs));
  const seqs = new Set<number>();
  const checkWq = (wq: SavedWorkQueue, vq: number, what: string) => {
    const chain = (c: SavedChain, which: string) => {
      if (c.current) {
        const size = enabled.get(vq);
        if (size === undefined) throw inconsistent(`${which}: held for virtqueue ${vq}, which is not enabled`);
        if (c.id >= size || c.descCount > size) throw inconsistent(`${which}: chain id ${c.id} in a ring of ${size}`);
      }
      for (const seg of [...c.readable, ...c.writable]) {
        if (t.dm.guest.tryTranslate(seg.gpa, seg.len) < 0) throw incompatible(`${which}: buffer 0x${seg.gpa.toString(16)}+${seg.len} is not guest RAM here`);
      }
    };
    wq.pending.forEach((c, i) => chain(c, `${what} pending chain ${i}`));
    wq.entries.forEach((e, i) => {
      chain(e.chain, `${what} work request ${i}`);
      if (e.seq >= a.seq || seqs.has(e.seq)) throw inconsistent(`${what}: sequence number ${e.seq} reused or not yet handed out`);
      seqs.add(e.seq);
      if (e.cq !== -1 && !cqs.has(e.cq)) throw inconsistent(`${what}: work request ${i} completes into no CQ (${e.cq})`);
    });
  };
  for (const x of s.srqs) {
    const what = `SRQ ${x.index + 1}`;
    known(what, x.pd, pds, 'PD');
    if (x.maxWr < 1 || x.maxWr > cfg.maxSrqWr || x.maxSge < 1 || x.maxSge > cfg.maxSrqSge) throw incompatible(`${what}: ${x.maxWr} WRs of ${x.maxSge} SGEs exceed this device`);
    if (x.limit !== 0 && x.limit >= x.maxWr) throw badRecord(`${what}: limit ${x.limit} not below ${x.maxWr}`);
    checkWq(x.wq, t.map.srq(x.index), what);
  }

  unique('QP index', s.qps.map((q) => q.index), (v) => v < cfg.maxQp, `0..${cfg.maxQp - 1}`);
  unique('QPN', s.qps.map((q) => q.qpn), () => true, '');
  const providerQps = new Map(p.qps.map((q) => [q.qpn, q.type]));
  for (const q of s.qps) {
    const what = `QP ${q.qpn}`;
    if (providerQps.get(q.qpn) !== q.verbsType) throw inconsistent(`${what} is not a provider QP of its type`);
    known(what, q.pd, pds, 'PD');
    known(what, q.sendCq, cqs, 'CQ');
    known(what, q.recvCq, cqs, 'CQ');
    if (q.srq !== 0) known(what, q.srq, srqHandles, 'SRQ');
    const c = q.cap;
    if (c.maxSendWr > cfg.maxQpWr || c.maxRecvWr > cfg.maxQpWr || c.maxSendSge > cfg.maxSendSge || c.maxRecvSge > cfg.maxRecvSge || c.maxInlineData > cfg.maxInlineData) {
      throw incompatible(`${what}: capabilities above this device's`);
    }
    if (q.sgidIndex !== -1 && !gids.has(q.sgidIndex)) throw inconsistent(`${what}: sgid index ${q.sgidIndex} names no GID`);
    checkWq(q.sq, t.map.sq(q.index), `${what} send queue`);
    checkWq(q.rq, t.map.rq(q.index), `${what} receive queue`);
  }
}
