#!/usr/bin/env node
'use strict';
/**
 * failurelens-node: the Node.js client from the command line; JSON on stdout, a progress bar on
 * stderr. Addresses, token and TLS come from the environment (see ../index.js).
 *
 *   failurelens-node health                 every service's grpc.health.v1 status
 *   failurelens-node datasets               the registered datasets
 *   failurelens-node runs                   the pipeline runs
 *   failurelens-node analyze REQUEST.json   submit a pipeline run and follow it to the end
 *   failurelens-node watch RUN_ID           follow a submitted run to the end
 *
 * Exit codes: 0 ok, 1 refused (the status is printed), 2 usage, 3 the run failed, 4 it was cancelled.
 */
const fs = require('node:fs');
const { FailureLensClient, FailureLensError } = require('..');

function bar(p) {
  if (!process.stderr.isTTY && !process.env.FAILURELENS_PROGRESS) return;
  const total = Number(p.total) || 0;
  const done = Number(p.done) || 0;
  const width = 30;
  const filled = total ? Math.min(width, Math.round((width * done) / total)) : 0;
  const counts = total ? ` ${done}/${total}` : '';
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.stage}${counts} ${p.message || ''}`.padEnd(100) + (process.stderr.isTTY ? '' : '\n'));
}

function summary(run) {
  return {
    run_id: run.run_id,
    state: run.state,
    error: run.error && run.error.code ? { code: run.error.code, message: run.error.message } : null,
    stages: run.stages.map((s) => ({ stage: s.stage, state: s.state, reused: s.reused, skipped: s.skipped })),
    report: run.report ? run.report.uri : '',
    summary: run.summary ? run.summary.uri : '',
  };
}

function finished(run) {
  console.log(JSON.stringify(summary(run)));
  return { JOB_STATE_SUCCEEDED: 0, JOB_STATE_FAILED: 3, JOB_STATE_CANCELLED: 4 }[run.state] ?? 3;
}

async function main(argv) {
  const [cmd, arg] = argv;
  const fl = FailureLensClient.fromEnv();
  try {
    switch (cmd) {
      case 'health': {
        const out = {};
        for (const name of Object.keys(fl.addresses)) out[name] = await fl.health(name).catch((e) => `DOWN (${e.codeName})`);
        console.log(JSON.stringify(out));
        return Object.values(out).every((s) => s === 'SERVING') ? 0 : 1;
      }
      case 'datasets':
        console.log(JSON.stringify((await fl.listDatasets()).map((d) => ({ dataset_id: d.dataset_id, num_rows: d.num_rows, classes: d.class_names.length }))));
        return 0;
      case 'runs':
        console.log(JSON.stringify((await fl.listRuns()).map((r) => ({ run_id: r.run_id, state: r.state, model_id: r.request ? r.request.model_id : '' }))));
        return 0;
      case 'analyze':
        if (!arg) break;
        return finished(await fl.runPipeline(JSON.parse(fs.readFileSync(arg, 'utf8')), bar));
      case 'watch':
        if (!arg) break;
        return finished(await fl.watchRun(arg, bar));
      default:
        break;
    }
    process.stderr.write('usage: failurelens-node health | datasets | runs | analyze REQUEST.json | watch RUN_ID\n');
    return 2;
  } catch (e) {
    if (!(e instanceof FailureLensError)) throw e;
    process.stderr.write(`error: ${e.message}\n`);
    console.log(JSON.stringify({ error: { code: e.codeName, message: e.details } }));
    return 1;
  } finally {
    fl.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(1);
  },
);
