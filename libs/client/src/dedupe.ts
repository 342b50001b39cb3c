/**
 * Remembers the last `size` keys seen (oldest forgotten first). Delivery is at least once: an
 * event routed twice comes back under a new offset with the same `event.id`.
 */
export class RecentKeys {
  private readonly keys = new Set<string>();
  private readonly order: string[] = [];
  private next = 0;

  constructor(private readonly size: number) {}

  /** True when `key` was seen among the last `size` keys; otherwise remembers it and returns false. */
  seen(key: string): boolean {
    if (this.keys.has(key)) return true;
    const evicted = this.order[this.next];
    if (evicted !== undefined) this.keys.delete(evicted);
    this.order[this.next] = key;
    this.next = (this.next + 1) % this.size;
    this.keys.add(key);
    return false;
  }
}
