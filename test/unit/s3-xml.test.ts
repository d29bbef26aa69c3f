import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  S3Error,
  S3_ERRORS,
  errorXml,
  escapeXml,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDeleteObjects,
  s3Error,
  xml,
  xmlDocument,
} from '../../src/kvs/gateway/s3-xml.js';

function expectS3Error(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof S3Error, `expected S3Error, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

function deleteBody(keys: Array<{ key: string; versionId?: string }>, quiet?: boolean): string {
  return xmlDocument('Delete', [
    ...(quiet === undefined ? [] : [xml('Quiet', quiet)]),
    ...keys.map((k) => xml('Object', [xml('Key', k.key), ...(k.versionId !== undefined ? [xml('VersionId', k.versionId)] : [])])),
  ]);
}

describe('error catalogue', () => {
  test('statuses and messages as AWS answers them', () => {
    const expected: Record<string, number> = {
      AccessDenied: 403,
      AccountProblem: 403,
      BucketAlreadyExists: 409,
      BucketAlreadyOwnedByYou: 409,
      BucketNotEmpty: 409,
      EntityTooLarge: 400,
      EntityTooSmall: 400,
      IncompleteBody: 400,
      InternalError: 500,
      InvalidAccessKeyId: 403,
      InvalidArgument: 400,
      InvalidBucketName: 400,
      InvalidDigest: 400,
      BadDigest: 400,
      InvalidPart: 400,
      InvalidPartOrder: 400,
      InvalidRange: 416,
      InvalidRequest: 400,
      InvalidStorageClass: 400,
      KeyTooLongError: 400,
      MalformedXML: 400,
      MethodNotAllowed: 405,
      MissingContentLength: 411,
      NoSuchBucket: 404,
      NoSuchKey: 404,
      NoSuchUpload: 404,
      NotImplemented: 501,
      PreconditionFailed: 412,
      RequestTimeTooSkewed: 403,
      SignatureDoesNotMatch: 403,
      SlowDown: 503,
      ServiceUnavailable: 503,
      AuthorizationHeaderMalformed: 400,
      AuthorizationQueryParametersError: 400,
      XAmzContentSHA256Mismatch: 400,
      MetadataTooLarge: 400,
    };
    for (const [code, status] of Object.entries(expected)) {
      assert.equal(S3_ERRORS[code]?.status, status, code);
      assert.ok((S3_ERRORS[code]?.message.length ?? 0) > 0, code);
    }
    assert.equal(S3_ERRORS['NoSuchKey']!.message, 'The specified key does not exist.');
    assert.equal(S3_ERRORS['AccessDenied']!.message, 'Access Denied');
    assert.equal(
      S3_ERRORS['SignatureDoesNotMatch']!.message,
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    );
    assert.ok(Object.isFrozen(S3_ERRORS));
  });

  test('s3Error: defaults, overrides, unknown codes', () => {
    const e = s3Error('NoSuchBucket');
    assert.ok(e instanceof S3Error && e instanceof Error);
    assert.deepEqual([e.code, e.status, e.message, e.extra], ['NoSuchBucket', 404, 'The specified bucket does not exist.', {}]);
    const f = s3Error('InvalidArgument', 'bad part', { ArgumentName: 'partNumber' });
    assert.deepEqual([f.status, f.message, f.extra], [400, 'bad part', { ArgumentName: 'partNumber' }]);
    const g = s3Error('SomethingNew');
    assert.deepEqual([g.status, g.message], [500, 'SomethingNew']);
    assert.equal(s3Error('toString').status, 500); // no prototype lookups
  });

  test('errorXml', () => {
    const body = errorXml(s3Error('NoSuchKey', undefined, { Key: 'a<b>&"c\'' }), '/bucket/a<b>', 'req-1');
    assert.equal(
      body,
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>' +
        '<Resource>/bucket/a&lt;b&gt;</Resource><RequestId>req-1</RequestId><Key>a&lt;b&gt;&amp;&quot;c&apos;</Key></Error>',
    );
  });
});

describe('builders', () => {
  test('escaping of markup characters and control characters', () => {
    assert.equal(escapeXml(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
    assert.equal(escapeXml('a\u0000b\u0001c\td\ne\rf\u007f\u0085'), 'a&#x0;b&#x1;c&#x9;d&#xA;e&#xD;f&#x7F;&#x85;');
    assert.equal(escapeXml('ünï 日本 🙂'), 'ünï 日本 🙂');
    assert.equal(xml('Key', '<script>'), '<Key>&lt;script&gt;</Key>');
    assert.equal(xml('Size', 0), '<Size>0</Size>');
    assert.equal(xml('IsTruncated', false), '<IsTruncated>false</IsTruncated>');
    assert.equal(xml('Prefix', ''), '<Prefix></Prefix>');
    assert.equal(xml('Prefix', null), '<Prefix></Prefix>');
    assert.equal(xml('Prefix'), '<Prefix></Prefix>');
    assert.equal(xml('Contents', [xml('Key', 'a'), xml('Size', 1)]), '<Contents><Key>a</Key><Size>1</Size></Contents>');
    assert.throws(() => xml('bad name', 'x'), TypeError);
    assert.throws(() => xml('<x>', 'x'), TypeError);
  });

  test('xmlDocument: declaration and namespace', () => {
    assert.equal(
      xmlDocument('ListAllMyBucketsResult', [xml('Owner', [xml('ID', '1')])], true),
      '<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>1</ID></Owner></ListAllMyBucketsResult>',
    );
    assert.equal(xmlDocument('Error', [], false), '<?xml version="1.0" encoding="UTF-8"?>\n<Error></Error>');
    assert.match(xmlDocument('InitiateMultipartUploadResult', []), /xmlns="http:\/\/s3\.amazonaws\.com\/doc\/2006-03-01\/"/);
  });
});

describe('CompleteMultipartUpload', () => {
  test('parses parts, keeps ETags exactly (quotes, entities), ignores checksums and namespace', () => {
    const body = `<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part>
    <PartNumber>1</PartNumber>
    <ETag>"a54357aff0632cce46d942af68356b38"</ETag>
  </Part>
  <Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber> 0002 </PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>
</CompleteMultipartUpload>`;
    assert.deepEqual(parseCompleteMultipartUpload(body), [
      { partNumber: 1, etag: '"a54357aff0632cce46d942af68356b38"' },
      { partNumber: 2, etag: '"0c78aef83f66abc1fa1e8477f296d394"' },
    ]);
    // what @aws-sdk/client-s3 sends (no declaration, namespace, unquoted ETag allowed)
    assert.deepEqual(
      parseCompleteMultipartUpload(
        '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>abc</ETag><PartNumber>3</PartNumber></Part></CompleteMultipartUpload>',
      ),
      [{ partNumber: 3, etag: 'abc' }],
    );
  });

  test('rejects malformed input', () => {
    const bad = [
      '',
      'not xml',
      '<CompleteMultipartUpload>',
      '<CompleteMultipartUpload></CompleteMultipartUpload>',
      '<Complete><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Complete>',
      '<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1.5</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>0x10</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag></ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1<b/></PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part>junk<PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload><Again/>',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>trailing',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a&b</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&nbsp;</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</Etag></Part></CompleteMultipartUpload>',
    ];
    for (const b of bad) expectS3Error(() => parseCompleteMultipartUpload(b), 'MalformedXML');
  });

  test('part numbers out of range → InvalidArgument', () => {
    for (const n of ['0', '10001', '99999999999999999999']) {
      expectS3Error(
        () => parseCompleteMultipartUpload(`<CompleteMultipartUpload><Part><PartNumber>${n}</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>`),
        'InvalidArgument',
      );
    }
  });
});

describe('Delete', () => {
  test('parses keys exactly: no trimming, no number coercion, entities and CDATA decoded', () => {
    const body = `<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Quiet>true</Quiet>
  <Object><Key>0012</Key></Object>
  <Object><Key>  spaced key  </Key><VersionId>v1</VersionId></Object>
  <Object><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233;&#x1F642;</Key></Object>
  <Object><Key><![CDATA[raw <cdata> & stuff]]></Key></Object>
  <Object><Key>1e3</Key></Object>
  <Object><Key>true</Key></Object>
  <Object><Key>
</Key></Object>
</Delete>`;
    assert.deepEqual(parseDeleteObjects(body), {
      quiet: true,
      keys: [
        { key: '0012' },
        { key: '  spaced key  ', versionId: 'v1' },
        { key: 'a & b <c> "d" \'e\' é🙂' },
        { key: 'raw <cdata> & stuff' },
        { key: '1e3' },
        { key: 'true' },
        { key: '\n' },
      ],
    });
    assert.equal(parseDeleteObjects('<Delete><Object><Key>k</Key></Object></Delete>').quiet, false);
    assert.equal(parseDeleteObjects('<Delete><Quiet>false</Quiet><Object><Key>k</Key></Object></Delete>').quiet, false);
  });

  test('rejects malformed input', () => {
    const bad = [
      '',
      '<Delete></Delete>',
      '<Delete><Quiet>true</Quiet></Delete>',
      '<Delete><Object></Object></Delete>',
      '<Delete><Object><Key></Key></Object></Delete>',
      '<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>',
      '<Delete><Object><VersionId>v</VersionId></Object></Delete>',
      '<Delete><Quiet>yes</Quiet><Object><Key>k</Key></Object></Delete>',
      '<Delete><Quiet>true</Quiet><Quiet>true</Quiet><Object><Key>k</Key></Object></Delete>',
      '<DeleteObjects><Object><Key>k</Key></Object></DeleteObjects>',
      '<Delete><Object><Key>k</Key></Object>',
      '<Delete><Object><Key>a & b</Key></Object></Delete>',
      '<Delete><Object><Key>&unknown;</Key></Object></Delete>',
      '<Delete><Object><Key>&#xD800;</Key></Object></Delete>',
      '<Delete><Object><Key>&#x110000;</Key></Object></Delete>',
      `<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`,
    ];
    for (const b of bad) expectS3Error(() => parseDeleteObjects(b), 'MalformedXML');
    assert.equal(parseDeleteObjects(`<Delete>${'<Object><Key>k</Key></Object>'.repeat(1000)}</Delete>`).keys.length, 1000);
  });

  test('DOCTYPE / entity declarations are refused (no entity expansion, no external entities)', () => {
    const laughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Delete><Object><Key>&lol3;</Key></Object></Delete>`;
    expectS3Error(() => parseDeleteObjects(laughs), 'MalformedXML');
    const xxe = `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>`;
    expectS3Error(() => parseDeleteObjects(xxe), 'MalformedXML');
    expectS3Error(() => parseDeleteObjects('<!doctype Delete><Delete><Object><Key>k</Key></Object></Delete>'), 'MalformedXML');
  });

  test('property: any key survives building a <Delete> body and parsing it back', () => {
    // S3 keys are UTF-8, so no lone surrogates; everything else (controls, CR/LF, spaces, markup) must survive
    const key = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).filter((s) => Buffer.from(s, 'utf8').toString('utf8') === s);
    const markupKey = fc.string({ unit: fc.constantFrom('<', '>', '&', '"', "'", ' ', '\r', '\n', '\t', ']]>', '&amp;', '0', 'é', '\u0000'), minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: fc.oneof(key, markupKey), versionId: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: undefined }) }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.boolean(),
        (objects, quiet) => {
          const keys = objects.map((o) => (o.versionId === undefined ? { key: o.key } : { key: o.key, versionId: o.versionId }));
          const parsed = parseDeleteObjects(deleteBody(keys, quiet));
          assert.deepEqual(parsed, { quiet, keys });
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('CreateBucketConfiguration', () => {
  test('empty body, location constraint, namespace', () => {
    assert.deepEqual(parseCreateBucketConfiguration(''), {});
    assert.deepEqual(parseCreateBucketConfiguration('  \n'), {});
    assert.deepEqual(
      parseCreateBucketConfiguration(
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>',
      ),
      { locationConstraint: 'eu-west-1' },
    );
    assert.deepEqual(parseCreateBucketConfiguration('<CreateBucketConfiguration></CreateBucketConfiguration>'), {});
    assert.deepEqual(parseCreateBucketConfiguration('<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>'), {});
  });

  test('rejects malformed input', () => {
    for (const b of [
      'x',
      '<CreateBucketConfiguration>',
      '<Configuration><LocationConstraint>eu</LocationConstraint></Configuration>',
      '<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint><LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>',
      '<!DOCTYPE x><CreateBucketConfiguration/>',
    ]) {
      expectS3Error(() => parseCreateBucketConfiguration(b), 'MalformedXML');
    }
  });
});
