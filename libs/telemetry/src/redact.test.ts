import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REDACTED, redactText, redactUrl } from './redact.js';

test('redactUrl should replace the access and subscription tokens and keep the rest of the URL', () => {
  assert.equal(
    redactUrl('/sse?channels=chat:r1,user:u1&access_token=aaa.bbb.ccc&subscription_token=ddd.eee&last_event_id=x'),
    `/sse?channels=chat:r1,user:u1&access_token=${REDACTED}&subscription_token=${REDACTED}&last_event_id=x`,
  );
  assert.equal(redactUrl('/ws?access_token=aaa.bbb.ccc'), `/ws?access_token=${REDACTED}`);
});

test('redactUrl should leave a URL without secrets as it is', () => {
  for (const url of ['/posts', '/posts?limit=20&cursor=a%2Fb', '/x?', '/x?flag&access_token', 'http://h:1/a?b=c#d']) {
    assert.equal(redactUrl(url), url);
  }
});

test('redactUrl should redact repeated, empty and percent-encoded secret parameters and keep the fragment', () => {
  assert.equal(
    redactUrl('http://h:8080/ws?access_token=one&access%5Ftoken=two&a=1#access_token=frag'),
    `http://h:8080/ws?access_token=${REDACTED}&access%5Ftoken=${REDACTED}&a=1#access_token=frag`,
  );
  assert.equal(redactUrl('/ws?access_token='), `/ws?access_token=${REDACTED}`);
  assert.equal(redactUrl('/ws?access_token=%zz'), `/ws?access_token=${REDACTED}`);
});

test('redactText should remove tokens a message echoes from a URL or a header', () => {
  assert.equal(
    redactText("'/sse?access_token=aaa.bbb&subscription_token=ccc' is not a valid url component"),
    `'/sse?access_token=${REDACTED}&subscription_token=${REDACTED}' is not a valid url component`,
  );
  assert.equal(redactText('authorization: Bearer aaa.bbb-c_d'), `authorization: Bearer ${REDACTED}`);
  assert.equal(redactText('no route GET /posts?limit=2'), 'no route GET /posts?limit=2');
});
