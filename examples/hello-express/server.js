'use strict';

// The smallest useful Aether app: the platform injects PORT and sends traffic once the
// port accepts connections (a TCP probe).
const express = require('express');

const VERSION = '1.0.0';
const app = express();

app.get('/', (_req, res) => {
  res.type('text/plain').send(`hello from aether (hello-express ${VERSION})\n`);
});

// For your own monitors; the platform does not call it.
app.get('/healthz', (_req, res) => {
  res.status(200).type('text/plain').send('ok\n');
});

const port = Number(process.env.PORT) || 3000;
const server = app.listen(port, () => {
  console.log(`hello-express ${VERSION} listening on port ${port}`);
});

// Kubernetes stops pods with SIGTERM: finish in-flight requests, then exit.
process.on('SIGTERM', () => server.close(() => process.exit(0)));
