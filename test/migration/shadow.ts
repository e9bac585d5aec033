// A pre-copy migration's view of a VM's RAM, in miniature: a shadow copy taken when the VM's two
// dirty logs start (the first round copies everything), then updated only with the pages the logs
// harvest (each later round copies exactly those). If every write to guest RAM was logged, the
// shadow equals RAM byte for byte once the VM is quiet; a write that escaped the logs shows up
// as a page that differs.
import { gpa } from '../../src/memory/gpa.js';
import type { Vm } from '../../src/host/vm.js';

const PAGE = 4096;

export class Shadow {
  readonly bytes: Uint8Array;
  rounds = 0;
  pagesCopied = 0;

  constructor(private readonly vm: Vm, private readonly ramBytes: number) {
    vm.dirtyLog.start();
    vm.cpuLog.start();
    this.bytes = vm.dm.guest.slice(gpa(0), ramBytes).slice();
  }

  /** One round: harvest both logs, copy their pages (the union) from RAM. Returns pages copied. */
  round(): number {
    const ram = this.vm.dm.guest.slice(gpa(0), this.ramBytes);
    let n = 0;
    for (const log of [this.vm.dirtyLog, this.vm.cpuLog]) {
      for (const page of log.harvest()) {
        const at = page * PAGE;
        if (at >= this.ramBytes) throw new Error(`dirty page ${page} is outside the VM's RAM`);
        this.bytes.set(ram.subarray(at, at + PAGE), at);
        n++;
      }
    }
    this.rounds++;
    this.pagesCopied += n;
    return n;
  }

  /** Pages where the shadow and RAM differ. */
  differing(): number[] {
    const ram = this.vm.dm.guest.slice(gpa(0), this.ramBytes);
    const out: number[] = [];
    for (let at = 0; at < this.ramBytes; at += PAGE) {
      if (Buffer.compare(ram.subarray(at, at + PAGE), this.bytes.subarray(at, at + PAGE)) !== 0) out.push(at / PAGE);
    }
    return out;
  }
}
