import {
  parseRouteTemplate,
  type ExportKind,
  type RouteSyntax,
  type RouteTemplate,
} from '@sluice/sinks-core';

/**
 * AMQP routing keys: dot-separated words (topic exchanges match them word by word), at most 255
 * bytes. A substituted value never adds a word or a wildcard: `.`, `*`, `#`, spaces and control
 * characters become `_`.
 */
export const ROUTING_KEY_SYNTAX: RouteSyntax = {
  noun: 'routing key',
  literal: /^[A-Za-z0-9_.:/-]*$/,
  literalRule: 'may contain only letters, digits, "_", "-", ".", ":", "/" and placeholders',
  unsafe: /[.*#\s\p{Cc}]/gu,
  maxBytes: 255,
};

export function parseRoutingKeyTemplate(
  source: string,
  kind: ExportKind,
  setting: string,
): RouteTemplate {
  return parseRouteTemplate(source, kind, setting, ROUTING_KEY_SYNTAX);
}
