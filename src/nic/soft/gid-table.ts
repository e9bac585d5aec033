// The port's GID table. RoCE v2 over IPv4: a GID is an IPv4 address (R7). Entry 0 is the link's
// own address; packets can only leave from it, so a QP or AH must name an entry holding it.
import { VerbsError, VerbsErrorCode, invalid } from '../errors.js';
import { ipv4 } from '../roce/icrc.js';

export class GidTable {
  private readonly gids = new Map<number, string>();

  constructor(readonly maxGid: number, localIp: string) {
    this.gids.set(0, checkIp(localIp));
  }

  add(index: number, gid: string): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.maxGid) throw invalid(`GID index ${index} outside [0, ${this.maxGid})`);
    if (this.gids.has(index)) throw new VerbsError(VerbsErrorCode.Exists, `GID index ${index} is in use`);
    this.gids.set(index, checkIp(gid));
  }

  delete(index: number): void {
    if (!this.gids.delete(index)) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no GID at index ${index}`);
  }

  get(index: number): string | undefined {
    return this.gids.get(index);
  }

  /** Every entry, by index (index 0 first). */
  entries(): [number, string][] {
    return [...this.gids].sort((a, b) => a[0] - b[0]);
  }

  get size(): number {
    return this.gids.size;
  }
}

export function checkIp(text: string): string {
  try {
    ipv4(text);
  } catch {
    throw invalid(`GID ${String(text)} is not an IPv4 address`);
  }
  return text;
}
