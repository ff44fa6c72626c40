// How the command line logs: human-readable lines (pino-pretty) when stderr is a terminal, one JSON
// object per line otherwise (pipes, files, process supervisors, the tests that read a node's
// "core node listening" line). `up` runs a whole cluster in one process: everything goes to a JSON
// file and only warnings and errors reach the terminal, so its banner is not buried.
// Invariant: the pretty printer and the file are written synchronously, so nothing logged before a
// clean exit (process.exit after close) is lost.
import { dirname, join } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** stderr as a log destination: pretty on a TTY, JSON otherwise. */
function stderrStream(): DestinationStream {
  if (!process.stderr.isTTY) return pino.destination({ dest: 2, sync: true });
  return pretty({ destination: 2, sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}

/** The logger of `core`, `replica` and the other single-node commands. */
export function stderrLogger(level: string): Logger {
  return pino({ level }, stderrStream());
}

/**
 * The logger of `up`: every line at `level` and above as JSON in `file` (truncated at start, so one
 * run's log is bounded by that run), warnings and errors on stderr as well.
 */
export function fileAndStderrLogger(level: string, file: string): Logger {
  const streams = pino.multistream([
    { level: level as pino.Level, stream: pino.destination({ dest: file, sync: true, mkdir: true, append: false }) },
    { level: 'warn', stream: stderrStream() },
  ]);
  return pino({ level }, streams);
}

/** Where `up` writes its log by default: beside the first core node's data dir (./data/statemirror.log). */
export function defaultLogFile(firstDataDir: string): string {
  return join(dirname(firstDataDir), 'statemirror.log');
}
