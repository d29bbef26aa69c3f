// Uplink batches kept until an Ack names them. Payloads are opaque here: the buffer never looks inside.

export interface PendingBatch {
  seq: number;
  topic: string;
  payload: Buffer;
  /** Envelopes in the batch (for backpressure, which counts envelopes, not batches). */
  envelopes: number;
  /** When it was last handed to the MQTT client; 0 = never. */
  sentAt: number;
  /** Publishes so far; > 1 means retransmitted. */
  attempts: number;
}

export class RetransmitBuffer {
  private readonly pending = new Map<number, PendingBatch>();
  private envelopeCount = 0;

  add(seq: number, topic: string, payload: Buffer, envelopes: number): PendingBatch {
    const b: PendingBatch = { seq, topic, payload, envelopes, sentAt: 0, attempts: 0 };
    this.pending.set(seq, b);
    this.envelopeCount += envelopes;
    return b;
  }

  /** Forgets an acknowledged batch; false when it was not pending (a duplicate or stray ack). */
  ack(seq: number): boolean {
    const b = this.pending.get(seq);
    if (!b) return false;
    this.pending.delete(seq);
    this.envelopeCount -= b.envelopes;
    return true;
  }

  has(seq: number): boolean {
    return this.pending.has(seq);
  }

  markSent(b: PendingBatch, now: number): void {
    b.sentAt = now;
    b.attempts++;
  }

  /**
   * Batches never sent, or whose wait since the last send is over, oldest first. The wait doubles with each
   * attempt (afterMs, 2×, 4×, at most 8×): a slow but live ingest is not buried under retransmissions.
   */
  due(now: number, afterMs: number): PendingBatch[] {
    const out: PendingBatch[] = [];
    for (const b of this.pending.values()) if (b.sentAt === 0 || now - b.sentAt >= afterMs * 2 ** Math.min(3, Math.max(0, b.attempts - 1))) out.push(b);
    return out;
  }

  /** Every pending batch in sequence order (Map keeps insertion order, and seqs are inserted ascending). */
  all(): PendingBatch[] {
    return [...this.pending.values()];
  }

  get batches(): number {
    return this.pending.size;
  }

  get envelopes(): number {
    return this.envelopeCount;
  }
}
