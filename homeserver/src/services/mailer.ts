import nodemailer, { type Transporter } from 'nodemailer';
import type { SmtpConfig } from '../core/config.js';
import { MatrixError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

export interface Mail {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

/** Sends mail over SMTP with nodemailer; without SMTP settings every send is refused clearly. */
export class Mailer {
  private readonly transport: Transporter | null;

  constructor(
    private readonly smtp: SmtpConfig | undefined,
    private readonly logger: Logger,
  ) {
    this.transport = smtp ? nodemailer.createTransport(smtp.url) : null;
  }

  get enabled(): boolean {
    return this.transport !== null;
  }

  async send(mail: Mail): Promise<void> {
    if (!this.transport || !this.smtp) {
      throw new MatrixError(400, 'M_THREEPID_DENIED', 'This server cannot send email (no SMTP configured)');
    }
    try {
      await this.transport.sendMail({ from: this.smtp.from, ...mail });
    } catch (err) {
      // The address is not logged in full: it is personal data.
      this.logger.error({ err: (err as Error).message, domain: mail.to.split('@')[1] }, 'sending mail failed');
      throw new MatrixError(500, 'M_UNKNOWN', 'Could not send email; try again later');
    }
  }

  close(): void {
    this.transport?.close();
  }
}
