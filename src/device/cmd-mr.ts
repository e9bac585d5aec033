// Memory region commands (docs/device-spec.md §7.7–§7.9, §7.18, §7.19, §7.21, §8). Page lists
// are validated completely (alignment, counts, guest RAM) before the provider sees them, and the
// page list is read once, while the command executes.
import { gpa, type Gpa } from '../memory/gpa.js';
import type { PhysicalRegistration } from '../nic/verbs.js';
import { AccessFlag, AdviseFlag, PhysMrFlag, RdmaStatus, ReregFlag } from './abi.js';
import { u64n } from './bytes.js';
import type { CommandContext } from './control.js';
import type { DeviceCore, MrObj } from './core.js';
import { DeviceError, badHandle, invalidArg } from './errors.js';
import { readSge } from './structs.js';
import { checkMrAccess, checkReservedZero } from './validate.js';

const fault = (message: string) => new DeviceError(RdmaStatus.Fault, message);

/** The translation fields of REG_PHYS_MR / REREG_PHYS_MR (and REG_USER_MR's, converted). */
interface TranslationFields {
  iova: number;
  length: number;
  pageShift: number;
  offset: number;
  npages: number;
  flags: number;
  listGpa: number;
  /** Inline page list: the view and the offset of entry 0. */
  inline: { view: DataView; off: number } | null;
}

interface Translation {
  iova: number;
  length: number;
  pageShift: 12 | 21;
  npages: number;
  invalidatable: boolean;
  indirect: boolean;
  listGpa: number;
  inline: { view: DataView; off: number } | null;
}

/** Value checks (§7.18's INVALID_ARG list) that need no guest memory. */
function checkTranslation(core: DeviceCore, f: TranslationFields): Translation {
  const cfg = core.config;
  if (f.iova < 0) throw invalidArg('iova at or above 2^53 (host verbs addresses are exact below 2^53)');
  if (f.length <= 0 || f.length > cfg.maxMrSize) throw invalidArg(`length ${f.length} is not in 1..${cfg.maxMrSize}`);
  if (!Number.isSafeInteger(f.iova + f.length)) throw invalidArg('iova + length reaches 2^53');
  if (f.pageShift >= 53 || Math.floor(cfg.pageSizeCap / 2 ** f.pageShift) % 2 !== 1 || (f.pageShift !== 12 && f.pageShift !== 21)) {
    throw invalidArg(`page_shift ${f.pageShift} is not in page_size_cap`);
  }
  const pageBytes = 2 ** f.pageShift;
  if (f.offset >= pageBytes) throw invalidArg(`offset ${f.offset} is not below the page size`);
  if (f.offset !== f.iova % pageBytes) throw invalidArg(`offset ${f.offset} is not iova mod page size`);
  const npages = Math.ceil((f.offset + f.length) / pageBytes);
  if (f.npages !== npages) throw invalidArg(`npages ${f.npages}, expected ${npages}`);
  if (npages > cfg.maxPhysMrPages) throw invalidArg(`${npages} pages exceed max_phys_mr_pages`);
  if ((f.flags & ~(PhysMrFlag.INDIRECT | PhysMrFlag.INVALIDATABLE)) !== 0) throw invalidArg(`unknown flags 0x${f.flags.toString(16)}`);
  const indirect = (f.flags & PhysMrFlag.INDIRECT) !== 0;
  if (indirect && (f.listGpa < 0 || f.listGpa % 8 !== 0)) throw invalidArg('list_gpa is not 8-aligned');
  if (!indirect && f.listGpa !== 0) throw invalidArg('list_gpa without INDIRECT');
  if (f.inline !== null && !indirect) {
    for (let i = 0; i < npages; i++) {
      const page = u64n(f.inline.view, f.inline.off + 8 * i);
      if (page >= 0 && page % pageBytes !== 0) throw invalidArg(`page ${i} is not aligned to the page size`);
    }
  }
  return {
    iova: f.iova, length: f.length, pageShift: f.pageShift, npages, invalidatable: (f.flags & PhysMrFlag.INVALIDATABLE) !== 0,
    indirect, listGpa: f.listGpa, inline: indirect ? null : f.inline,
  };
}

/** Read the page list (indirect lists from guest memory) and check every page is guest RAM now. */
function resolvePages(core: DeviceCore, t: Translation): Gpa[] {
  const guest = core.transport.dm.guest;
  let list: DataView;
  let base: number;
  if (t.indirect) {
    const off = guest.tryTranslate(t.listGpa, t.npages * 8);
    if (off < 0) throw fault(`page list ${t.listGpa}+${t.npages * 8} is not guest RAM`);
    // One copy, then validate the copy: the guest cannot change what was checked (§14).
    const copy = guest.bytes.slice(off, off + t.npages * 8);
    list = new DataView(copy.buffer);
    base = 0;
  } else {
    const inline = t.inline as { view: DataView; off: number };
    list = inline.view;
    base = inline.off;
  }
  const pageBytes = 2 ** t.pageShift;
  const pages: Gpa[] = [];
  for (let i = 0; i < t.npages; i++) {
    const page = u64n(list, base + 8 * i);
    if (page < 0 || guest.tryTranslate(page, pageBytes) < 0) throw fault(`page ${i} is not guest RAM`);
    if (page % pageBytes !== 0) throw invalidArg(`page ${i} is not aligned to the page size`);
    pages.push(gpa(page));
  }
  return pages;
}

function physRegistration(t: Translation, pages: Gpa[], access: number): PhysicalRegistration {
  return { iova: t.iova, length: t.length, access, pageShift: t.pageShift, pages, invalidatable: t.invalidatable };
}

function reserveMrSlot(core: DeviceCore): void {
  if (core.mrs.size >= core.config.maxMr) throw new DeviceError(RdmaStatus.NoResources, `${core.config.maxMr} MRs are live`);
}

function recordMr(core: DeviceCore, mr: Omit<MrObj, 'handle'>, resp: DataView): void {
  const handle = core.mrIds.allocate();
  core.mrs.set(handle, { ...mr, handle });
  resp.setUint32(0, handle, true);
  resp.setUint32(4, mr.lkey, true);
  resp.setUint32(8, mr.rkey, true);
}

export function handleGetDmaMr({ core, req, resp }: CommandContext): void {
  const access = checkMrAccess(core, req.getUint32(4, true));
  const pd = core.pd(req.getUint32(0, true));
  reserveMrSlot(core);
  const keys = core.verbs.registerAll(pd.verbsPd, access);
  recordMr(core, { pd: pd.handle, lkey: keys.lkey, rkey: keys.rkey, kind: 'dma', access, invalidatable: false, reg: 'all-memory' }, resp);
}

export function handleRegUserMr({ core, req, resp }: CommandContext): void {
  const access = checkMrAccess(core, req.getUint32(4, true));
  checkReservedZero(req, 28, 32, 'REG_USER_MR');
  const iova = u64n(req, 8);
  const t = checkTranslation(core, {
    iova, length: u64n(req, 16), pageShift: 12, offset: iova < 0 ? 0 : iova % 4096, npages: req.getUint32(24, true),
    flags: 0, listGpa: 0, inline: { view: req, off: 32 },
  });
  const pd = core.pd(req.getUint32(0, true));
  const pages = resolvePages(core, t);
  reserveMrSlot(core);
  const reg = physRegistration(t, pages, access);
  const keys = core.verbs.registerPhysical(pd.verbsPd, reg);
  recordMr(core, { pd: pd.handle, lkey: keys.lkey, rkey: keys.rkey, kind: 'phys', access, invalidatable: false, reg }, resp);
}

/** REG_PHYS_MR / REREG_PHYS_MR translation fields at `b` (iova) with the inline list at b + 40. */
function translationAt(req: DataView, b: number): TranslationFields {
  return {
    iova: u64n(req, b), length: u64n(req, b + 8), pageShift: req.getUint32(b + 16, true), offset: req.getUint32(b + 20, true),
    npages: req.getUint32(b + 24, true), flags: req.getUint32(b + 28, true), listGpa: u64n(req, b + 32), inline: { view: req, off: b + 40 },
  };
}

export function handleRegPhysMr({ core, req, resp }: CommandContext): void {
  const access = checkMrAccess(core, req.getUint32(4, true));
  const t = checkTranslation(core, translationAt(req, 8));
  const pd = core.pd(req.getUint32(0, true));
  const pages = resolvePages(core, t);
  reserveMrSlot(core);
  const reg = physRegistration(t, pages, access);
  const keys = core.verbs.registerPhysical(pd.verbsPd, reg);
  recordMr(core, { pd: pd.handle, lkey: keys.lkey, rkey: keys.rkey, kind: 'phys', access, invalidatable: t.invalidatable, reg }, resp);
  resp.setUint32(12, 0, true);
}

export function handleReregPhysMr({ core, datapath, req, resp }: CommandContext): void {
  const flags = req.getUint32(4, true);
  const known = ReregFlag.CHANGE_TRANSLATION | ReregFlag.CHANGE_PD | ReregFlag.CHANGE_ACCESS;
  if (flags === 0 || (flags & ~known) !== 0) throw invalidArg(`rereg_flags 0x${flags.toString(16)}`);
  const pdn = req.getUint32(8, true);
  const accessIn = req.getUint32(12, true);
  if (!(flags & ReregFlag.CHANGE_PD) && pdn !== 0) throw invalidArg('pdn given without CHANGE_PD');
  if (!(flags & ReregFlag.CHANGE_ACCESS) && accessIn !== 0) throw invalidArg('access_flags given without CHANGE_ACCESS');
  const access = flags & ReregFlag.CHANGE_ACCESS ? checkMrAccess(core, accessIn) : -1;
  let t: Translation | null = null;
  if (flags & ReregFlag.CHANGE_TRANSLATION) t = checkTranslation(core, translationAt(req, 16));
  else checkReservedZero(req, 16, 56, 'REREG_PHYS_MR translation');
  const mr = core.mr(req.getUint32(0, true));
  if (mr.kind === 'dma') throw invalidArg('the DMA MR cannot be re-registered');
  const newPd = flags & ReregFlag.CHANGE_PD ? core.pd(pdn) : null;
  if (newPd !== null && newPd.handle !== mr.pd && datapath.mrInFlight(mr)) {
    throw new DeviceError(RdmaStatus.Busy, `MR ${mr.handle} has work requests in flight on PD ${mr.pd}`);
  }
  const old = mr.reg as PhysicalRegistration;
  const finalAccess = access >= 0 ? access : mr.access;
  const reg: PhysicalRegistration = t === null ? { ...old, access: finalAccess } : physRegistration(t, resolvePages(core, t), finalAccess);
  core.verbs.reregisterPhysical(mr.lkey, reg, newPd === null ? undefined : newPd.verbsPd);
  mr.reg = reg;
  mr.access = finalAccess;
  if (t !== null) mr.invalidatable = t.invalidatable;
  if (newPd !== null) mr.pd = newPd.handle;
  resp.setUint32(0, mr.lkey, true);
  resp.setUint32(4, mr.rkey, true);
}

export function handleDeregMr({ core, req }: CommandContext): void {
  const mr = core.mr(req.getUint32(0, true));
  core.verbs.deregMr(mr.lkey);
  core.mrs.delete(mr.handle);
  core.mrIds.release(mr.handle);
}

/** verbs.h ibv_advise_mr_advice. */
const ADVICE_PREFETCH_WRITE = 1;
const ADVICE_MAX = 2;

export function handleAdviseMr({ core, req }: CommandContext): void {
  const advice = req.getUint32(0, true);
  const flags = req.getUint32(4, true);
  const numSge = req.getUint32(8, true);
  if (advice > ADVICE_MAX) throw invalidArg(`advice ${advice}`);
  if ((flags & ~AdviseFlag.FLUSH) !== 0) throw invalidArg(`flags 0x${flags.toString(16)}`);
  if (numSge < 1 || numSge > 16) throw invalidArg(`num_sge ${numSge} is not in 1..16`);
  checkReservedZero(req, 12, 16, 'ADVISE_MR');
  const sges = Array.from({ length: numSge }, (_, i) => readSge(req, 16 + 16 * i));
  for (const sge of sges) {
    const mr = core.mrByKey(sge.lkey);
    if (mr === undefined || mr.lkey !== sge.lkey) throw badHandle(`lkey 0x${sge.lkey.toString(16)} is not live`);
    if (mr.reg !== 'all-memory') {
      const end = sge.addr + sge.length;
      if (sge.addr < mr.reg.iova || !Number.isSafeInteger(end) || end > mr.reg.iova + mr.reg.length) throw invalidArg('range outside its MR');
    } else if (sge.addr < 0) {
      throw invalidArg('range outside guest-physical addresses');
    }
    if (advice === ADVICE_PREFETCH_WRITE && !(mr.access & AccessFlag.LOCAL_WRITE)) {
      throw new DeviceError(RdmaStatus.AccessDenied, `MR ${mr.handle} has no LOCAL_WRITE`);
    }
  }
  const adviseMr = core.verbs.adviseMr;
  if (adviseMr === undefined) throw new DeviceError(RdmaStatus.NotSupported, 'the provider cannot advise MRs');
  adviseMr.call(core.verbs, advice, flags, sges);
}
