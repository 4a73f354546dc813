import {
  parseRouteTemplate,
  type ExportKind,
  type RouteSyntax,
  type RouteTemplate,
} from '@sluice/sinks-core';

/**
 * MQTT topic names: `/`-separated levels, at most 65535 bytes. A substituted value is one level: `/`,
 * the wildcards `+` and `#`, NUL and other control characters become `_`. A template's own text may
 * not hold wildcards nor start with `$` (broker topics); a first level taken from data may (the
 * broker refuses what it reserves, e.g. Mosquitto answers "not authorized" for `$SYS/...`, and the
 * record goes to the DLQ with that reason).
 */
export const TOPIC_SYNTAX: RouteSyntax = {
  noun: 'topic',
  literal: /^[^+#\p{Cc}]*$/u,
  literalRule: 'may not contain the wildcards "+" and "#" nor control characters',
  unsafe: /[/+#\p{Cc}]/gu,
  maxBytes: 65_535,
  check: (source) =>
    source.startsWith('$')
      ? 'topics starting with "$" are reserved for the broker'
      : source.startsWith('/') || source.endsWith('/') || source.includes('//')
        ? 'an empty topic level (leading, trailing or double "/") is almost always a mistake'
        : undefined,
};

export function parseTopicTemplate(
  source: string,
  kind: ExportKind,
  setting: string,
): RouteTemplate {
  return parseRouteTemplate(source, kind, setting, TOPIC_SYNTAX);
}
