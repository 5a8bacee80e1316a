import { invalidArguments, type FieldViolation } from "@zero/kit/errors";

// Card numbers (PANs) in memory only: validated, reduced to brand + last four digits, handed to the
// provider, and dropped. Nothing here logs, stores or echoes a number — not even in an error
// message, which would reach logs and clients.

export interface CardDetails {
  /** Digits only. */
  number: string;
  expMonth: number;
  expYear: number;
  cvc: string;
}

export interface CardSummary {
  brand: string;
  last4: string;
}

/** The card fields of a request, checked; every problem named in one INVALID_ARGUMENT. */
export function parseCard(
  input: { number: string; expMonth: number; expYear: number; cvc: string },
  now: Date = new Date(),
): CardDetails {
  const violations: FieldViolation[] = [];
  const number = input.number.replace(/[\s-]/g, "");
  if (!/^\d{12,19}$/.test(number)) {
    violations.push({ field: "card.number", description: "must be 12 to 19 digits" });
  } else if (!passesLuhn(number)) {
    violations.push({ field: "card.number", description: "is not a valid card number (checksum)" });
  }
  if (!Number.isInteger(input.expMonth) || input.expMonth < 1 || input.expMonth > 12) {
    violations.push({ field: "card.exp_month", description: "must be 1 to 12" });
  }
  if (!Number.isInteger(input.expYear) || input.expYear < 1000 || input.expYear > 9999) {
    violations.push({ field: "card.exp_year", description: "must be a four-digit year" });
  } else if (input.expMonth >= 1 && input.expMonth <= 12 && isExpired(input.expYear, input.expMonth, now)) {
    violations.push({ field: "card.exp_year", description: "the card has expired" });
  }
  if (!/^\d{3,4}$/.test(input.cvc)) {
    violations.push({ field: "card.cvc", description: "must be 3 or 4 digits" });
  }
  if (violations.length > 0) throw invalidArguments(violations);
  return { number, expMonth: input.expMonth, expYear: input.expYear, cvc: input.cvc };
}

/** What may be kept and shown of a card. */
export function summariseCard(number: string): CardSummary {
  return { brand: cardBrand(number), last4: number.slice(-4) };
}

export function passesLuhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** The scheme from the number's prefix (IIN ranges of the major networks). */
export function cardBrand(number: string): string {
  const prefix = (n: number): number => Number(number.slice(0, n));
  if (number.startsWith("4")) return "visa";
  if ((prefix(2) >= 51 && prefix(2) <= 55) || (prefix(4) >= 2221 && prefix(4) <= 2720)) return "mastercard";
  if (prefix(2) === 34 || prefix(2) === 37) return "amex";
  if (number.startsWith("6011") || number.startsWith("65") || (prefix(3) >= 644 && prefix(3) <= 649))
    return "discover";
  if (prefix(4) >= 3528 && prefix(4) <= 3589) return "jcb";
  if (prefix(2) === 36 || prefix(2) === 38 || (prefix(3) >= 300 && prefix(3) <= 305)) return "diners";
  if (number.startsWith("62")) return "unionpay";
  return "unknown";
}

function isExpired(year: number, month: number, now: Date): boolean {
  // A card is valid through the last day of its expiry month.
  const current = now.getUTCFullYear() * 12 + now.getUTCMonth();
  return year * 12 + (month - 1) < current;
}
