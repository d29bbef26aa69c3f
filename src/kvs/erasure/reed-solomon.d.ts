// Types for @ronomon/reed-solomon 6 (a CommonJS native addon without its own types).
// Load it with createRequire: its package main is binding.node, which ESM `import` cannot load.
declare module '@ronomon/reed-solomon' {
  interface ReedSolomonApi {
    readonly MAX_K: number;
    readonly MAX_M: number;
    /** An encoding context for k data and m parity shards; cacheable and reusable concurrently. */
    create(k: number, m: number): Buffer;
    /**
     * Encodes the `targets` shards (bit i = shard i; data shards 0..k-1 in `buffer`, parity k..k+m-1 in `parity`)
     * from at least k `sources`. Runs on the libuv threadpool; may also overwrite shards that are neither
     * sources nor targets. Shard size = bufferSize / k = paritySize / m, a multiple of 8.
     */
    encode(
      context: Buffer,
      sources: number,
      targets: number,
      buffer: Buffer,
      bufferOffset: number,
      bufferSize: number,
      parity: Buffer,
      parityOffset: number,
      paritySize: number,
      callback: (error?: Error) => void,
    ): void;
  }
  const ReedSolomon: ReedSolomonApi;
  export = ReedSolomon;
}
