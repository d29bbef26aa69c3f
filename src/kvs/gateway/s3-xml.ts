// S3 XML in and out: responses are built by small functions (escaped text, no templates with raw input),
// request bodies (CompleteMultipartUpload, Delete, CreateBucketConfiguration) parsed with fast-xml-parser.
// Anything malformed → S3Error('MalformedXML').

export class S3Error extends Error {
  constructor(readonly code: string, message: string, readonly status: number, readonly extra: Record<string, string> = {}) {
    super(message);
  }
}

/** The S3 error catalogue we answer with: code → HTTP status and the default message AWS uses. */
export declare const S3_ERRORS: Readonly<Record<string, { status: number; message: string }>>;
/** S3Error from the catalogue; message defaults to AWS's. Unknown code → status 500. */
export declare function s3Error(code: string, message?: string, extra?: Record<string, string>): S3Error;
/** <?xml …?><Error><Code/><Message/><Resource/><RequestId/>…extra…</Error> */
export declare function errorXml(err: S3Error, resource: string, requestId: string): string;

/** Generic element builder: xml('Name', 'text') or xml('Parent', [child, child]); text is escaped. */
export declare function xml(name: string, content?: string | number | boolean | string[] | null): string;
export declare function xmlDocument(rootName: string, children: string[], namespace?: boolean): string;

export declare function parseCompleteMultipartUpload(body: string): Array<{ partNumber: number; etag: string }>;
export declare function parseDeleteObjects(body: string): { quiet: boolean; keys: Array<{ key: string; versionId?: string }> };
/** Returns the LocationConstraint if any (empty body allowed). */
export declare function parseCreateBucketConfiguration(body: string): { locationConstraint?: string };
