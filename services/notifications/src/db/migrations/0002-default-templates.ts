import { sql, type Kysely } from "kysely";

// Frozen in time: the default templates as they shipped (version 1, locale `en`). Admins publish
// later versions through the API; a later default change is a new migration that publishes a new
// version, never an edit here.

interface DefaultTemplate {
  name: string;
  description: string;
  subject: string;
  html: string;
  text: string;
}

const layout = (body: string): string =>
  `<!doctype html>
<html><body style="font-family: sans-serif; color: #1a1a1a; line-height: 1.5;">
${body}
<p style="color: #666; font-size: 12px;">Zero · this is an automated message.</p>
</body></html>`;

const DEFAULTS: DefaultTemplate[] = [
  {
    name: "welcome",
    description: "Sent once to every new account (UserRegistered).",
    subject: "Welcome to Zero{{#if first_name}}, {{first_name}}{{/if}}",
    html: layout(`<h1>Welcome{{#if first_name}}, {{first_name}}{{/if}}!</h1>
<p>Your account <strong>{{email}}</strong> is ready.</p>`),
    text: `Welcome{{#if first_name}}, {{first_name}}{{/if}}!

Your account {{email}} is ready.`,
  },
  {
    name: "email-verification",
    description: "The code that verifies an account's email (auth, SendTransactionalEmail).",
    subject: "Your Zero verification code",
    html: layout(`<p>Hello{{#if first_name}} {{first_name}}{{/if}},</p>
<p>Your verification code is <strong style="font-size: 20px; letter-spacing: 2px;">{{verification_code}}</strong>.</p>
{{#if verification_url}}<p><a href="{{verification_url}}">Verify my email</a></p>{{/if}}
<p>It expires in {{#if expires_in_minutes}}{{expires_in_minutes}}{{else}}30{{/if}} minutes. If you did not create an account, ignore this message.</p>`),
    text: `Hello{{#if first_name}} {{first_name}}{{/if}},

Your verification code is {{verification_code}}.
{{#if verification_url}}
Verify your email: {{verification_url}}
{{/if}}
It expires in {{#if expires_in_minutes}}{{expires_in_minutes}}{{else}}30{{/if}} minutes. If you did not create an account, ignore this message.`,
  },
  {
    name: "password-reset",
    description: "The code that resets a password (auth, SendTransactionalEmail).",
    subject: "Reset your Zero password",
    html: layout(`<p>Hello{{#if first_name}} {{first_name}}{{/if}},</p>
<p>Your password reset code is <strong style="font-size: 20px; letter-spacing: 2px;">{{reset_code}}</strong>.</p>
{{#if reset_url}}<p><a href="{{reset_url}}">Choose a new password</a></p>{{/if}}
<p>It expires in {{#if expires_in_minutes}}{{expires_in_minutes}}{{else}}30{{/if}} minutes. If you did not ask for a reset, ignore this message: your password is unchanged.</p>`),
    text: `Hello{{#if first_name}} {{first_name}}{{/if}},

Your password reset code is {{reset_code}}.
{{#if reset_url}}
Choose a new password: {{reset_url}}
{{/if}}
It expires in {{#if expires_in_minutes}}{{expires_in_minutes}}{{else}}30{{/if}} minutes. If you did not ask for a reset, ignore this message: your password is unchanged.`,
  },
  {
    name: "payment-created",
    description: "A payment was received and is being processed (PaymentCreated).",
    subject: "We received your payment {{reference}}",
    html: layout(`<p>Hello{{#if first_name}} {{first_name}}{{/if}},</p>
<p>We received your payment <strong>{{reference}}</strong> of <strong>{{amount}}</strong>{{#if description}} for {{description}}{{/if}} on {{date}}. We will confirm it once it is processed.</p>`),
    text: `Hello{{#if first_name}} {{first_name}}{{/if}},

We received your payment {{reference}} of {{amount}}{{#if description}} for {{description}}{{/if}} on {{date}}. We will confirm it once it is processed.`,
  },
  {
    name: "payment-succeeded",
    description: "Payment confirmation (PaymentSucceeded, the seeds' payment.processed).",
    subject: "Payment Confirmation {{reference}}",
    html: layout(`<p>Hello{{#if first_name}} {{first_name}}{{/if}},</p>
<p>Your payment <strong>{{reference}}</strong> of <strong>{{amount}}</strong> was completed on {{date}}.</p>
<p>Transaction: {{payment_id}}</p>`),
    text: `Hello{{#if first_name}} {{first_name}}{{/if}},

Your payment {{reference}} of {{amount}} was completed on {{date}}.
Transaction: {{payment_id}}`,
  },
  {
    name: "payment-failed",
    description: "A payment failed and needs the customer's action (PaymentFailed).",
    subject: "Payment Failed - Action Required ({{reference}})",
    html: layout(`<p>Hello{{#if first_name}} {{first_name}}{{/if}},</p>
<p>Your payment <strong>{{reference}}</strong> of <strong>{{amount}}</strong> could not be completed{{#if error_message}}: {{error_message}}{{else}}.{{/if}}</p>
<p>Please try again with another payment method.</p>
<p>Transaction: {{payment_id}}</p>`),
    text: `Hello{{#if first_name}} {{first_name}}{{/if}},

Your payment {{reference}} of {{amount}} could not be completed{{#if error_message}}: {{error_message}}{{else}}.{{/if}}
Please try again with another payment method.
Transaction: {{payment_id}}`,
  },
  {
    name: "payment-refunded",
    description: "A refund was issued (PaymentRefunded).",
    subject: "Refund of {{refund_amount}} for {{reference}}",
    html: layout(`<p>Hello{{#if first_name}} {{first_name}}{{/if}},</p>
<p>We refunded <strong>{{refund_amount}}</strong> of your payment <strong>{{reference}}</strong> on {{date}}{{#if fully_refunded}}; the payment is now fully refunded{{/if}}.</p>
<p>Transaction: {{payment_id}}</p>`),
    text: `Hello{{#if first_name}} {{first_name}}{{/if}},

We refunded {{refund_amount}} of your payment {{reference}} on {{date}}{{#if fully_refunded}}; the payment is now fully refunded{{/if}}.
Transaction: {{payment_id}}`,
  },
];

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const t of DEFAULTS) {
    await sql`insert into templates (name, locale, description, active_version)
              values (${t.name}, 'en', ${t.description}, 1)`.execute(db);
    await sql`insert into template_versions (name, locale, version, subject, html_body, text_body, created_by)
              values (${t.name}, 'en', 1, ${t.subject}, ${t.html}, ${t.text}, 'system')`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const names = DEFAULTS.map((t) => t.name);
  await sql`delete from template_versions where version = 1 and locale = 'en' and name = any(${names})`.execute(
    db,
  );
  await sql`delete from templates where locale = 'en' and name = any(${names})`.execute(db);
}
