import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';

/** A mail as the SMTP server received it: the envelope plus the parsed message. */
export interface ReceivedMail {
  /** Envelope sender and recipients (lower-cased), as given in MAIL FROM / RCPT TO. */
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  parsed: ParsedMail;
}

export interface TestSmtpServer {
  /** `smtp://127.0.0.1:PORT`, for HEARTH_SMTP_URL. */
  url: string;
  /** Every mail received so far, oldest first (including ones already taken by waitForMail). */
  readonly mails: readonly ReceivedMail[];
  /** Takes the oldest not yet taken mail to `to`, waiting up to `timeoutMs` for one to arrive. */
  waitForMail(to: string, timeoutMs?: number): Promise<ReceivedMail>;
  /** Mails to `to` received but not yet taken. */
  pending(to: string): ReceivedMail[];
  close(): Promise<void>;
}

/**
 * A real SMTP server on 127.0.0.1 (a free port) that accepts every mail without authentication
 * and parses it with mailparser. It does not offer STARTTLS, so clients send in plain text.
 */
export async function startSmtpServer(): Promise<TestSmtpServer> {
  const mails: ReceivedMail[] = [];
  const taken = new Set<ReceivedMail>();
  const waiters = new Set<() => void>();

  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((parsed) => {
          // Recorded before the SMTP answer: once the sender's sendMail resolves, the mail is here.
          mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address.toLowerCase() : '',
            to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            parsed,
          });
          for (const wake of waiters) wake();
          callback();
        })
        .catch((err: Error) => callback(err));
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as { port: number }).port;

  const pending = (to: string) => mails.filter((m) => !taken.has(m) && m.to.includes(to.toLowerCase()));

  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    pending,
    waitForMail(to, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const mail = pending(to)[0];
          if (!mail) return false;
          taken.add(mail);
          resolve(mail);
          return true;
        };
        if (check()) return;
        const wake = () => {
          if (check()) done();
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no mail to ${to} within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        waiters.add(wake);
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
