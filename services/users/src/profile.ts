import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type FieldMask } from "@bufbuild/protobuf/wkt";
import { invalidArguments, type FieldViolation } from "@zero/kit/errors";
import { MarketingPreferencesSchema, ProfileSchema, type Profile } from "@zero/proto/zero/users/v1/users_pb";
import type { ProfileRow } from "./db/schema.js";
import { updatePaths, type MaskSpec } from "./field-mask.js";
import { normaliseText, textProblem, type TextRule } from "./text-rules.js";

// The profile domain: what may be changed, how values are checked and normalised, and how a
// stored profile looks on the wire. No I/O here.

export const PROFILE_MASK: MaskSpec = {
  updatable: [
    "first_name",
    "last_name",
    "display_name",
    "bio",
    "avatar_url",
    "locale",
    "marketing.email_opt_in",
    "marketing.sms_opt_in",
  ],
  readOnly: ["user_id", "create_time", "update_time", "marketing.consent_update_time"],
};

/** The columns a caller can change, by their stored names. */
export interface ProfileFields {
  first_name: string;
  last_name: string;
  display_name: string;
  bio: string;
  avatar_url: string;
  locale: string;
  marketing_email: boolean;
  marketing_sms: boolean;
}

export const EMPTY_PROFILE: Readonly<ProfileFields> = Object.freeze({
  first_name: "",
  last_name: "",
  display_name: "",
  bio: "",
  avatar_url: "",
  locale: "",
  marketing_email: false,
  marketing_sms: false,
});

const TEXT_RULES = {
  first_name: { max: 100 },
  last_name: { max: 100 },
  display_name: { max: 50 },
  bio: { max: 500, multiline: true },
} as const satisfies Record<string, TextRule>;

const MAX_AVATAR_URL = 2048;
const MAX_LOCALE = 35;

/**
 * The changes an UpdateProfile asks for: the masked fields of `input`, normalised and checked.
 * Throws `invalid_argument` listing every bad field (`profile.avatar_url`, …) at once.
 */
export function profileChanges(
  input: Profile | undefined,
  mask: FieldMask | undefined,
): Partial<ProfileFields> {
  const profile = input ?? create(ProfileSchema);
  const marketing = profile.marketing ?? create(MarketingPreferencesSchema);
  const populated = [
    ...(["first_name", "last_name", "display_name", "bio", "avatar_url", "locale"] as const).filter(
      (field) => textOf(profile, field) !== "",
    ),
    ...(marketing.emailOptIn === undefined ? [] : ["marketing.email_opt_in"]),
    ...(marketing.smsOptIn === undefined ? [] : ["marketing.sms_opt_in"]),
  ];
  const paths = updatePaths(mask, PROFILE_MASK, populated);

  const changes: Partial<ProfileFields> = {};
  const violations: FieldViolation[] = [];
  for (const field of ["first_name", "last_name", "display_name", "bio"] as const) {
    if (!paths.has(field)) continue;
    const value = normaliseText(textOf(profile, field));
    const problem = textProblem(value, TEXT_RULES[field]);
    if (problem !== undefined) violations.push({ field: `profile.${field}`, description: problem });
    changes[field] = value;
  }
  if (paths.has("avatar_url")) {
    const result = checkAvatarUrl(profile.avatarUrl.trim());
    if ("problem" in result) violations.push({ field: "profile.avatar_url", description: result.problem });
    else changes.avatar_url = result.value;
  }
  if (paths.has("locale")) {
    const result = checkLocale(profile.locale.trim());
    if ("problem" in result) violations.push({ field: "profile.locale", description: result.problem });
    else changes.locale = result.value;
  }
  if (paths.has("marketing.email_opt_in")) changes.marketing_email = marketing.emailOptIn ?? false;
  if (paths.has("marketing.sms_opt_in")) changes.marketing_sms = marketing.smsOptIn ?? false;

  if (violations.length > 0) throw invalidArguments(violations);
  return changes;
}

type Checked = { value: string } | { problem: string };

/**
 * An https URL without credentials. The server only stores it: clients load the image, so there
 * is no server-side request to forge; credentials in it would leak to everyone who sees it.
 */
export function checkAvatarUrl(value: string): Checked {
  if (value === "") return { value };
  if ([...value].length > MAX_AVATAR_URL) return { problem: `must be at most ${MAX_AVATAR_URL} characters` };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { problem: "must be an absolute https URL, e.g. https://images.example.com/me.png" };
  }
  if (url.protocol !== "https:") return { problem: `must use https (got ${url.protocol.replace(/:$/, "")})` };
  if (url.username !== "" || url.password !== "")
    return { problem: "must not contain a user name or password" };
  if (url.hostname === "") return { problem: "must name a host" };
  if (url.href.length > MAX_AVATAR_URL) return { problem: `must be at most ${MAX_AVATAR_URL} characters` };
  return { value: url.href };
}

/** A BCP 47 tag, answered in canonical form (`en-gb` → `en-GB`). */
export function checkLocale(value: string): Checked {
  if (value === "") return { value };
  const problem = { problem: "must be a BCP 47 language tag, e.g. en, en-GB or pt-BR" };
  if (value.length > MAX_LOCALE || !/^[A-Za-z0-9-]+$/.test(value)) return problem;
  try {
    const [canonical] = Intl.getCanonicalLocales(value);
    return canonical === undefined || canonical.length > MAX_LOCALE ? problem : { value: canonical };
  } catch {
    return problem;
  }
}

/**
 * The names auth registered, made to fit the profile's rules. auth validates them already; this
 * only keeps an out-of-rule value from turning the event into one that can never be applied.
 */
export function namesFromRegistration(
  firstName: string,
  lastName: string,
): Pick<ProfileFields, "first_name" | "last_name"> {
  const fit = (value: string, max: number) =>
    [...normaliseText(value).replace(/[\p{Cc}\u202A-\u202E\u2066-\u2069]/gu, " ")]
      .slice(0, max)
      .join("")
      .trim();
  return {
    first_name: fit(firstName, TEXT_RULES.first_name.max),
    last_name: fit(lastName, TEXT_RULES.last_name.max),
  };
}

export function toProfile(row: ProfileRow): Profile {
  return create(ProfileSchema, {
    userId: row.user_id,
    firstName: row.first_name,
    lastName: row.last_name,
    displayName: row.display_name,
    bio: row.bio,
    avatarUrl: row.avatar_url,
    locale: row.locale,
    marketing: {
      emailOptIn: row.marketing_email,
      smsOptIn: row.marketing_sms,
      ...(row.marketing_consent_updated_at === null
        ? {}
        : { consentUpdateTime: timestampFromDate(row.marketing_consent_updated_at) }),
    },
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
  });
}

function textOf(
  profile: Profile,
  field: "first_name" | "last_name" | "display_name" | "bio" | "avatar_url" | "locale",
): string {
  switch (field) {
    case "first_name":
      return profile.firstName;
    case "last_name":
      return profile.lastName;
    case "display_name":
      return profile.displayName;
    case "bio":
      return profile.bio;
    case "avatar_url":
      return profile.avatarUrl;
    case "locale":
      return profile.locale;
  }
}

export function profileFieldsOf(row: ProfileRow): ProfileFields {
  return {
    first_name: row.first_name,
    last_name: row.last_name,
    display_name: row.display_name,
    bio: row.bio,
    avatar_url: row.avatar_url,
    locale: row.locale,
    marketing_email: row.marketing_email,
    marketing_sms: row.marketing_sms,
  };
}
