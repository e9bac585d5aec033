// The migration coordinator (issue 5 item 6; docs/architecture.md "Migration coordinator"): what
// a VMM does to move a VM with RDMA in flight between two host processes over a TCP stream.
//
//   source:       const report = await migrateOut(vm, { host, port }, { pauseGuest, resumeGuest });
//   destination:  const l = listenForMigration({ host, port }, { restoreVm, resumeGuest });
//                 const { vm, appState } = await l.accepted;
//
// After the move the guest driver's objects are found by handle on the new VM
// (vm.guest.qps.get(qpn), .cqs, .srqs): QPNs, CQ numbers and keys do not change.
export { migrateOut } from './source.js';
export type { MigrateOutOptions, MigrationPhase, MigrationProgress, MigrationTarget, SourceVm } from './source.js';
export { listenForMigration } from './destination.js';
export type { DestinationVm, IncomingMigration, ListenOptions, MigrationListener, RestoreParts } from './destination.js';
export type { BlackoutSummary, MigrationReport, QpBlackout, RoundReport } from './report.js';
export { MigrationError, MigrationErrorCode } from './errors.js';
export { DEFAULT_PRECOPY } from './precopy.js';
export type { PageLog, PrecopyPolicy, StopReason } from './precopy.js';
