// Preloaded into s3rver by the test fixtures (node --require): makes a PUT
// answer only after the object's file is written and closed.
//
// s3rver 3.7.1 resolves putObject/putPart when its hashing Transform has seen
// the last byte, not when the file stream behind it has flushed, so a GET
// right after a 200 could find no file (404) or a short one. Real S3 is
// read-after-write consistent; cairn relies on that, and so do its tests.
'use strict';

const fs = require('fs');
const path = require('path');
const {createRequire} = require('module');
const {AsyncLocalStorage} = require('async_hooks');

const main = fs.realpathSync(process.argv[1]);  // .../s3rver/bin/s3rver.js
const storeFile = path.join(path.dirname(main), '..', 'lib', 'stores', 'filesystem.js');
if (fs.existsSync(storeFile)) {
  const load = createRequire(storeFile);
  const fsx = load('fs-extra');  // the instance filesystem.js writes through
  const FilesystemStore = load(storeFile);
  const calls = new AsyncLocalStorage();  // the write streams of one store call

  const createWriteStream = fsx.createWriteStream;
  fsx.createWriteStream = function(...args) {
    const stream = createWriteStream.apply(this, args);
    const mine = calls.getStore();
    if (mine) mine.push(stream);
    return stream;
  };
  const closed = stream => new Promise(resolve => {
    if (stream.closed || stream.destroyed) return resolve();
    stream.once('close', resolve);
    stream.once('error', resolve);
  });
  for (const method of ['putObject', 'putPart']) {
    const original = FilesystemStore.prototype[method];
    FilesystemStore.prototype[method] = function(...args) {
      const streams = [];
      return calls.run(streams, async () => {
        const result = await original.apply(this, args);
        await Promise.all(streams.map(closed));
        return result;
      });
    };
  }
} else {
  process.emitWarning(`s3rver_durable_put: ${storeFile} not found; PUTs stay as they are`);
}
