import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type FieldMask } from "@bufbuild/protobuf/wkt";
import { invalidArguments, type FieldViolation } from "@zero/kit/errors";
import { AddressSchema, type Address } from "@zero/proto/zero/users/v1/users_pb";
import { COUNTRY_CODES } from "./country-codes.js";
import type { AddressRow } from "./db/schema.js";
import { updatePaths, type MaskSpec } from "./field-mask.js";
import { normaliseText, textProblem, type TextRule } from "./text-rules.js";

// The address domain: what an address must hold, how values are normalised, what an update may
// change, and how a stored address looks on the wire. No I/O here.

/** A user may keep this many addresses: enough for anyone, bounded for abuse. */
export const MAX_ADDRESSES_PER_USER = 50;

export const ADDRESS_MASK: MaskSpec = {
  updatable: [
    "recipient_name",
    "company",
    "line1",
    "line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "phone",
    "default_shipping",
    "default_billing",
  ],
  readOnly: ["id", "create_time", "update_time"],
};

const TEXT_FIELDS = ["recipient_name", "company", "line1", "line2", "city", "region"] as const;
type TextField = (typeof TEXT_FIELDS)[number];
const TEXT_RULES: Record<TextField, TextRule> = {
  recipient_name: { max: 100, required: true },
  company: { max: 100 },
  line1: { max: 200, required: true },
  line2: { max: 200 },
  city: { max: 100, required: true },
  region: { max: 100 },
};
const POSTAL_CODE = /^[A-Z0-9](?:[A-Z0-9 -]{0,18}[A-Z0-9])?$/;
// E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
const E164 = /^\+[1-9]\d{6,14}$/;

/** The columns a caller can set, by their stored names. */
export interface AddressFields {
  recipient_name: string;
  company: string;
  line1: string;
  line2: string;
  city: string;
  region: string;
  postal_code: string;
  country_code: string;
  phone: string;
  default_shipping: boolean;
  default_billing: boolean;
}

/** A new address from CreateAddress, normalised; throws `invalid_argument` listing every bad field. */
export function newAddressFields(input: Address | undefined): AddressFields {
  const address = input ?? create(AddressSchema);
  return checked({
    recipient_name: address.recipientName,
    company: address.company,
    line1: address.line1,
    line2: address.line2,
    city: address.city,
    region: address.region,
    postal_code: address.postalCode,
    country_code: address.countryCode,
    phone: address.phone,
    default_shipping: address.defaultShipping ?? false,
    default_billing: address.defaultBilling ?? false,
  });
}

/**
 * `current` with the fields of `input` named by `mask` (or, without one, those given a value)
 * applied. The result is checked whole, so an update cannot blank a required field.
 */
export function updatedAddressFields(
  current: AddressFields,
  input: Address | undefined,
  mask: FieldMask | undefined,
): AddressFields {
  const address = input ?? create(AddressSchema);
  const given = newShape(address);
  const populated = ADDRESS_MASK.updatable.filter((path) => {
    const value = given[path as keyof AddressFields];
    return typeof value === "string" ? value !== "" : value !== undefined;
  });
  const paths = updatePaths(mask, ADDRESS_MASK, populated);
  const next: AddressFields = { ...current };
  for (const path of paths) {
    const key = path as keyof AddressFields;
    const value = given[key];
    if (key === "default_shipping" || key === "default_billing")
      next[key] = (value as boolean | undefined) ?? false;
    else next[key] = value as string;
  }
  return checked(next);
}

export function fieldsOf(row: AddressRow): AddressFields {
  const { id: _id, user_id: _user, created_at: _created, updated_at: _updated, ...fields } = row;
  return fields;
}

export function toAddress(row: AddressRow): Address {
  return create(AddressSchema, {
    id: row.id,
    recipientName: row.recipient_name,
    company: row.company,
    line1: row.line1,
    line2: row.line2,
    city: row.city,
    region: row.region,
    postalCode: row.postal_code,
    countryCode: row.country_code,
    phone: row.phone,
    defaultShipping: row.default_shipping,
    defaultBilling: row.default_billing,
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
  });
}

function newShape(address: Address): { [K in keyof AddressFields]: AddressFields[K] | undefined } {
  return {
    recipient_name: address.recipientName,
    company: address.company,
    line1: address.line1,
    line2: address.line2,
    city: address.city,
    region: address.region,
    postal_code: address.postalCode,
    country_code: address.countryCode,
    phone: address.phone,
    default_shipping: address.defaultShipping,
    default_billing: address.defaultBilling,
  };
}

function checked(fields: AddressFields): AddressFields {
  const violations: FieldViolation[] = [];
  const out: AddressFields = { ...fields };
  for (const field of TEXT_FIELDS) {
    out[field] = normaliseText(fields[field]);
    const problem = textProblem(out[field], TEXT_RULES[field]);
    if (problem !== undefined) violations.push({ field: `address.${field}`, description: problem });
  }
  out.postal_code = normaliseText(fields.postal_code).toUpperCase().replace(/\s+/g, " ");
  if (out.postal_code !== "" && !POSTAL_CODE.test(out.postal_code)) {
    violations.push({
      field: "address.postal_code",
      description:
        "must be at most 20 letters, digits, spaces and hyphens, starting and ending with a letter or digit",
    });
  }
  out.country_code = fields.country_code.trim().toUpperCase();
  if (out.country_code === "") {
    violations.push({
      field: "address.country_code",
      description: "is required (ISO 3166-1 alpha-2, e.g. DE)",
    });
  } else if (!COUNTRY_CODES.has(out.country_code)) {
    violations.push({
      field: "address.country_code",
      description: "must be an ISO 3166-1 alpha-2 country code, e.g. DE, FR or US",
    });
  }
  // People type phone numbers with spaces, dashes, dots and brackets; E.164 has none of them.
  out.phone = fields.phone.replace(/[\s().-]/g, "");
  if (out.phone !== "" && !E164.test(out.phone)) {
    violations.push({
      field: "address.phone",
      description: "must be an international number in E.164 form, e.g. +4930123456",
    });
  }
  if (violations.length > 0) throw invalidArguments(violations);
  return out;
}
