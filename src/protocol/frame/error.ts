// The one error the frame codec throws, for bad bytes in and for out-of-range values out.

/** What was wrong: frame size, checksum, unknown code, a non-BCD serial nibble, or a field value. */
export type FrameErrorDetail = 'length' | 'crc' | 'code' | 'bcd' | 'field';

export class FrameError extends Error {
  readonly code = 'malformed' as const;
  constructor(
    readonly detail: FrameErrorDetail,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}
