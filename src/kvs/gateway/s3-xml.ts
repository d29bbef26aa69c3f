// S3 XML in and out: responses are built by small functions (escaped text, no templates with raw input),
// request bodies (CompleteMultipartUpload, Delete, CreateBucketConfiguration) parsed with fast-xml-parser.
// Anything malformed → S3Error('MalformedXML').
//
// Parsing is deliberately conservative: DOCTYPE / ENTITY declarations are refused outright (no entity expansion
// of any kind), fast-xml-parser runs with entity processing off, tag values are never coerced (a key '0012' stays
// '0012') nor trimmed, and the five predefined entities plus numeric character references are decoded here.
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export class S3Error extends Error {
  constructor(readonly code: string, message: string, readonly status: number, readonly extra: Record<string, string> = {}) {
    super(message);
  }
}

/** The S3 error catalogue we answer with: code → HTTP status and the default message AWS uses. */
export const S3_ERRORS: Readonly<Record<string, { status: number; message: string }>> = Object.freeze({
  AccessDenied: { status: 403, message: 'Access Denied' },
  AccountProblem: {
    status: 403,
    message:
      'There is a problem with your AWS account that prevents the operation from completing successfully. Contact AWS Support for further assistance.',
  },
  AllAccessDisabled: {
    status: 403,
    message: 'All access to this Amazon S3 resource has been disabled. Contact AWS Support for further assistance.',
  },
  AuthorizationHeaderMalformed: { status: 400, message: 'The authorization header you provided is invalid.' },
  AuthorizationQueryParametersError: { status: 400, message: 'The authorization query parameters you provided are invalid.' },
  BadDigest: { status: 400, message: 'The Content-MD5 or checksum value that you specified did not match what the server received.' },
  BucketAlreadyExists: {
    status: 409,
    message: 'The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.',
  },
  BucketAlreadyOwnedByYou: { status: 409, message: 'Your previous request to create the named bucket succeeded and you already own it.' },
  BucketNotEmpty: { status: 409, message: 'The bucket you tried to delete is not empty.' },
  ConditionalRequestConflict: {
    status: 409,
    message: 'A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part.',
  },
  CredentialsNotSupported: { status: 400, message: 'This request does not support credentials.' },
  EntityTooLarge: { status: 400, message: 'Your proposed upload exceeds the maximum allowed object size.' },
  EntityTooSmall: { status: 400, message: 'Your proposed upload is smaller than the minimum allowed object size.' },
  ExpiredToken: { status: 400, message: 'The provided token has expired.' },
  IllegalLocationConstraintException: {
    status: 400,
    message: 'The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.',
  },
  IncompleteBody: { status: 400, message: 'You did not provide the number of bytes specified by the Content-Length HTTP header.' },
  InternalError: { status: 500, message: 'We encountered an internal error. Please try again.' },
  InvalidAccessKeyId: { status: 403, message: 'The AWS access key ID you provided does not exist in our records.' },
  InvalidArgument: { status: 400, message: 'Invalid Argument' },
  InvalidBucketName: { status: 400, message: 'The specified bucket is not valid.' },
  InvalidBucketState: { status: 409, message: 'The request is not valid with the current state of the bucket.' },
  InvalidDigest: { status: 400, message: 'The Content-MD5 you specified is not valid.' },
  InvalidLocationConstraint: { status: 400, message: 'The specified location constraint is not valid.' },
  InvalidObjectState: { status: 403, message: 'The operation is not valid for the current state of the object.' },
  InvalidPart: {
    status: 400,
    message:
      "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
  },
  InvalidPartOrder: {
    status: 400,
    message: 'The list of parts was not in ascending order. The parts list must be specified in order by part number.',
  },
  InvalidRange: { status: 416, message: 'The requested range is not satisfiable' },
  InvalidRequest: { status: 400, message: 'Invalid Request' },
  InvalidStorageClass: { status: 400, message: 'The storage class you specified is not valid.' },
  InvalidToken: { status: 400, message: 'The provided token is malformed or otherwise invalid.' },
  InvalidURI: { status: 400, message: "Couldn't parse the specified URI." },
  KeyTooLongError: { status: 400, message: 'Your key is too long.' },
  MalformedXML: {
    status: 400,
    message: 'The XML you provided was not well-formed or did not validate against our published schema.',
  },
  MaxMessageLengthExceeded: { status: 400, message: 'Your request was too big.' },
  MetadataTooLarge: { status: 400, message: 'Your metadata headers exceed the maximum allowed metadata size.' },
  MethodNotAllowed: { status: 405, message: 'The specified method is not allowed against this resource.' },
  MissingContentLength: { status: 411, message: 'You must provide the Content-Length HTTP header.' },
  MissingRequestBodyError: { status: 400, message: 'Request Body is empty.' },
  MissingSecurityHeader: { status: 400, message: 'Your request is missing a required header.' },
  NoSuchBucket: { status: 404, message: 'The specified bucket does not exist.' },
  NoSuchBucketPolicy: { status: 404, message: 'The specified bucket does not have a bucket policy.' },
  NoSuchKey: { status: 404, message: 'The specified key does not exist.' },
  NoSuchLifecycleConfiguration: { status: 404, message: 'The lifecycle configuration does not exist.' },
  NoSuchUpload: {
    status: 404,
    message: 'The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.',
  },
  NoSuchVersion: { status: 404, message: 'The version ID specified in the request does not match an existing version.' },
  NotImplemented: { status: 501, message: 'A header you provided implies functionality that is not implemented.' },
  NotModified: { status: 304, message: 'Not Modified' },
  OperationAborted: { status: 409, message: 'A conflicting conditional operation is currently in progress against this resource. Try again.' },
  PreconditionFailed: { status: 412, message: 'At least one of the preconditions you specified did not hold.' },
  RequestTimeout: {
    status: 400,
    message: 'Your socket connection to the server was not read from or written to within the timeout period.',
  },
  RequestTimeTooSkewed: { status: 403, message: "The difference between the request time and the server's time is too large." },
  ServiceUnavailable: { status: 503, message: 'Please reduce your request rate.' },
  SignatureDoesNotMatch: {
    status: 403,
    message: 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  },
  SlowDown: { status: 503, message: 'Please reduce your request rate.' },
  TooManyBuckets: { status: 400, message: 'You have attempted to create more buckets than allowed.' },
  UnexpectedContent: { status: 400, message: 'This request does not support content.' },
  XAmzContentSHA256Mismatch: { status: 400, message: "The provided 'x-amz-content-sha256' header does not match what was computed." },
});

/** S3Error from the catalogue; message defaults to AWS's. Unknown code → status 500. */
export function s3Error(code: string, message?: string, extra?: Record<string, string>): S3Error {
  const known = Object.prototype.hasOwnProperty.call(S3_ERRORS, code) ? S3_ERRORS[code] : undefined;
  return new S3Error(code, message ?? known?.message ?? code, known?.status ?? 500, extra ?? {});
}

// ---------------------------------------------------------------------------------------------------------------
// Building

const XML_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
// C0 controls (also TAB/LF/CR, so they survive any XML end-of-line normalisation), DEL, C1 controls, and the
// non-characters U+FFFE/U+FFFF are written as character references.
// eslint-disable-next-line no-control-regex
const ESCAPE = /[&<>"'\u0000-\u001f\u007f-\u009f\ufffe\uffff]/g;

export const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';
export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

/** Escapes text for element content or attribute values. */
export function escapeXml(text: string): string {
  return text.replace(ESCAPE, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      case "'":
        return '&apos;';
      default:
        return `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`;
    }
  });
}

function checkName(name: string): void {
  if (!XML_NAME.test(name)) throw new TypeError(`invalid XML element name: ${JSON.stringify(name)}`);
}

/** Generic element builder: xml('Name', 'text') or xml('Parent', [child, child]); text is escaped. */
export function xml(name: string, content?: string | number | boolean | string[] | null): string {
  checkName(name);
  if (content === undefined || content === null || content === '') return `<${name}></${name}>`;
  if (Array.isArray(content)) return `<${name}>${content.join('')}</${name}>`;
  return `<${name}>${escapeXml(String(content))}</${name}>`;
}

/**
 * A whole document: the XML declaration, then the root element with the children (already built with xml()).
 * The S3 namespace is added unless `namespace` is false (S3's own <Error> documents carry none).
 */
export function xmlDocument(rootName: string, children: string[], namespace = true): string {
  checkName(rootName);
  const open = namespace ? `<${rootName} xmlns="${S3_NAMESPACE}">` : `<${rootName}>`;
  return `${XML_DECLARATION}\n${open}${children.join('')}</${rootName}>`;
}

/** <?xml …?><Error><Code/><Message/><Resource/><RequestId/>…extra…</Error> */
export function errorXml(err: S3Error, resource: string, requestId: string): string {
  const children = [xml('Code', err.code), xml('Message', err.message), xml('Resource', resource), xml('RequestId', requestId)];
  for (const [k, v] of Object.entries(err.extra)) {
    if (XML_NAME.test(k) && !['Code', 'Message', 'Resource', 'RequestId'].includes(k)) children.push(xml(k, v));
  }
  return xmlDocument('Error', children, false);
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing

type XNode = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  cdataPropName: '#cdata',
  commentPropName: '#comment',
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: true,
});

/** MalformedXML with AWS's message; `_why` documents the reason at the call site. */
function malformed(_why?: string): S3Error {
  return s3Error('MalformedXML');
}

const WS_ONLY = /^[ \t\r\n]*$/;

/** The name of an element node, or undefined for text/comment/cdata nodes. */
function nodeName(node: XNode): string | undefined {
  for (const k of Object.keys(node)) {
    if (k === ':@') continue;
    return k.startsWith('#') ? undefined : k;
  }
  return undefined;
}

function children(node: XNode, name: string): XNode[] {
  const c = node[name];
  return Array.isArray(c) ? (c as XNode[]) : [];
}

/** Element children of a container element; non-whitespace text in a container is a schema violation. */
function elementChildren(node: XNode, name: string): Array<{ name: string; node: XNode }> {
  const out: Array<{ name: string; node: XNode }> = [];
  for (const child of children(node, name)) {
    const n = nodeName(child);
    if (n !== undefined) out.push({ name: n, node: child });
    else if ('#text' in child && !WS_ONLY.test(String(child['#text']))) throw malformed(`unexpected text in <${name}>`);
    else if ('#cdata' in child) throw malformed(`unexpected CDATA in <${name}>`);
  }
  return out;
}

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Decodes the predefined entities and character references; any other '&' is malformed. */
function decodeEntities(raw: string): string {
  if (!raw.includes('&')) return raw;
  let out = '';
  let i = 0;
  const re = /&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[A-Za-z]+);/y;
  while (i < raw.length) {
    const amp = raw.indexOf('&', i);
    if (amp < 0) {
      out += raw.slice(i);
      break;
    }
    out += raw.slice(i, amp);
    re.lastIndex = amp;
    const m = re.exec(raw);
    if (!m) throw malformed('invalid entity reference');
    const ref = m[1]!;
    if (ref.startsWith('#')) {
      const cp = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw malformed('invalid character reference');
      out += String.fromCodePoint(cp);
    } else {
      const ch = PREDEFINED[ref];
      if (ch === undefined) throw malformed(`undefined entity &${ref};`);
      out += ch;
    }
    i = amp + m[0].length;
  }
  return out;
}

/** Text content of a leaf element (text and CDATA, entities decoded, nothing trimmed). */
function leafText(node: XNode, name: string): string {
  let out = '';
  for (const child of children(node, name)) {
    if (nodeName(child) !== undefined) throw malformed(`unexpected element inside <${name}>`);
    if ('#text' in child) out += decodeEntities(String(child['#text']));
    else if ('#cdata' in child) {
      for (const t of children(child, '#cdata')) if ('#text' in t) out += String(t['#text']);
    }
  }
  return out;
}

/** Parses a request body and returns its root element (checked against `rootName`). */
function parseRoot(body: string, rootName: string): XNode {
  const text = body.startsWith('\ufeff') ? body.slice(1) : body;
  // No DTDs at all: this is what closes the door on entity expansion ("billion laughs") and external entities.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw malformed('DTDs are not allowed');
  if (XMLValidator.validate(text) !== true) throw malformed();
  if (!text.trimEnd().endsWith('>')) throw malformed('content after the root element');
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch {
    throw malformed();
  }
  if (!Array.isArray(doc)) throw malformed();
  let root: XNode | undefined;
  for (const node of doc as XNode[]) {
    const n = nodeName(node);
    if (n === undefined) {
      if ('#text' in node && !WS_ONLY.test(String(node['#text']))) throw malformed('text outside the root element');
      continue;
    }
    if (root !== undefined) throw malformed('more than one root element');
    if (n !== rootName) throw malformed(`root element must be <${rootName}>`);
    root = node;
  }
  if (!root) throw malformed(`root element must be <${rootName}>`);
  return root;
}

function single(elements: Array<{ name: string; node: XNode }>, name: string, required: true): XNode;
function single(elements: Array<{ name: string; node: XNode }>, name: string, required: false): XNode | undefined;
function single(elements: Array<{ name: string; node: XNode }>, name: string, required: boolean): XNode | undefined {
  const found = elements.filter((e) => e.name === name);
  if (found.length > 1) throw malformed(`<${name}> given more than once`);
  if (found.length === 0 && required) throw malformed(`<${name}> is missing`);
  return found[0]?.node;
}

export const MAX_PARTS = 10000;
export const MAX_DELETE_KEYS = 1000;

export function parseCompleteMultipartUpload(body: string): Array<{ partNumber: number; etag: string }> {
  const root = parseRoot(body, 'CompleteMultipartUpload');
  const parts: Array<{ partNumber: number; etag: string }> = [];
  for (const el of elementChildren(root, 'CompleteMultipartUpload')) {
    if (el.name !== 'Part') continue;
    const fields = elementChildren(el.node, 'Part');
    const pn = leafText(single(fields, 'PartNumber', true), 'PartNumber').trim();
    const etag = leafText(single(fields, 'ETag', true), 'ETag');
    if (!/^[0-9]+$/.test(pn)) throw malformed('PartNumber must be an integer');
    const partNumber = Number(pn);
    if (partNumber < 1 || partNumber > MAX_PARTS) {
      throw s3Error('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PARTS}, inclusive`, {
        ArgumentName: 'PartNumber',
        ArgumentValue: pn,
      });
    }
    if (etag.trim() === '') throw malformed('ETag must not be empty');
    parts.push({ partNumber, etag });
    if (parts.length > MAX_PARTS) throw malformed('too many parts');
  }
  if (parts.length === 0) throw malformed('at least one <Part> is required');
  return parts;
}

export function parseDeleteObjects(body: string): { quiet: boolean; keys: Array<{ key: string; versionId?: string }> } {
  const root = parseRoot(body, 'Delete');
  const elements = elementChildren(root, 'Delete');
  const quietNode = single(elements, 'Quiet', false);
  let quiet = false;
  if (quietNode) {
    const q = leafText(quietNode, 'Quiet').trim().toLowerCase();
    if (q !== 'true' && q !== 'false') throw malformed('Quiet must be true or false');
    quiet = q === 'true';
  }
  const keys: Array<{ key: string; versionId?: string }> = [];
  for (const el of elements) {
    if (el.name !== 'Object') continue;
    const fields = elementChildren(el.node, 'Object');
    const key = leafText(single(fields, 'Key', true), 'Key');
    if (key === '') throw malformed('Key must not be empty');
    const versionNode = single(fields, 'VersionId', false);
    const versionId = versionNode ? leafText(versionNode, 'VersionId') : undefined;
    keys.push(versionId !== undefined && versionId !== '' ? { key, versionId } : { key });
    if (keys.length > MAX_DELETE_KEYS) throw malformed(`a Delete request may name at most ${MAX_DELETE_KEYS} keys`);
  }
  if (keys.length === 0) throw malformed('at least one <Object> is required');
  return { quiet, keys };
}

/** Returns the LocationConstraint if any (empty body allowed). */
export function parseCreateBucketConfiguration(body: string): { locationConstraint?: string } {
  if (WS_ONLY.test(body.startsWith('\ufeff') ? body.slice(1) : body)) return {};
  const root = parseRoot(body, 'CreateBucketConfiguration');
  const node = single(elementChildren(root, 'CreateBucketConfiguration'), 'LocationConstraint', false);
  if (!node) return {};
  const lc = leafText(node, 'LocationConstraint').trim();
  return lc === '' ? {} : { locationConstraint: lc };
}
