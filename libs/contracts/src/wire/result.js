"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.formatPath = formatPath;
exports.describeInput = describeInput;
exports.fieldErrors = fieldErrors;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** `["a", "b", 0, "c.d"]` → `a.b[0]["c.d"]`. */
function formatPath(path) {
    let out = '';
    for (const part of path) {
        if (typeof part === 'number')
            out += `[${part}]`;
        else if (typeof part === 'string' && IDENTIFIER.test(part))
            out += out === '' ? part : `.${part}`;
        else
            out += `[${JSON.stringify(String(part))}]`;
    }
    return out;
}
const MAX_SHOWN = 40;
/** A short rendering of a rejected input for error messages: `"NaN"`, `12`, `null`, `an array`. */
function describeInput(input) {
    if (typeof input === 'string') {
        return JSON.stringify(input.length > MAX_SHOWN ? `${input.slice(0, MAX_SHOWN)}…` : input);
    }
    if (typeof input === 'number' || typeof input === 'boolean' || typeof input === 'bigint') {
        return String(input);
    }
    if (input === null)
        return 'null';
    if (input === undefined)
        return 'nothing';
    if (Array.isArray(input))
        return 'an array';
    return typeof input === 'object' ? 'an object' : `a ${typeof input}`;
}
/** Zod issues as field errors; an unknown-keys issue becomes one error per key. */
function fieldErrors(issues) {
    const errors = [];
    for (const issue of issues) {
        if (issue.code === 'unrecognized_keys' && issue.keys) {
            for (const key of issue.keys) {
                errors.push({ path: formatPath([...issue.path, key]), message: issue.message });
            }
        }
        else {
            errors.push({ path: formatPath(issue.path), message: issue.message });
        }
    }
    return errors;
}
//# sourceMappingURL=result.js.map