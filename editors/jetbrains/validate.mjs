#!/usr/bin/env node
// Checks the LSP4IJ user-defined server template in ./weft (no dependencies):
//   node editors/jetbrains/validate.mjs [template-dir]
// The shape mirrors what LSP4IJ's LanguageServerTemplateDeserializer reads:
// template.json { id, name, programArgs { default, windows? },
// fileTypeMappings [{ fileType { name? | patterns? }, languageId }],
// languageMappings [{ language, languageId }] }, plus the JSON objects
// settings.json, initializationOptions.json and clientSettings.json.
import { readFileSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const dir = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "weft");
const errors = [];
const err = (file, msg) => errors.push(`${file}: ${msg}`);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const nonEmpty = (v) => typeof v === "string" && v.trim() !== "";

function load(file, required = true) {
  const path = join(dir, file);
  if (!existsSync(path)) {
    if (required) err(file, "missing");
    return undefined;
  }
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    err(file, `not valid JSON: ${e.message}`);
    return undefined;
  }
}

const template = load("template.json");
if (template !== undefined) {
  const f = "template.json";
  if (!isObject(template)) err(f, "must be an object");
  else {
    const known = new Set(["id", "name", "programArgs", "fileTypeMappings", "languageMappings", "description"]);
    for (const key of Object.keys(template)) if (!known.has(key)) err(f, `unknown key "${key}"`);
    if (!nonEmpty(template.id) || !/^[a-z0-9][a-z0-9._-]*$/.test(template.id)) err(f, "id must be a lower-case identifier");
    if (!nonEmpty(template.name)) err(f, "name must be a non-empty string");
    const args = template.programArgs;
    if (!isObject(args)) err(f, "programArgs must be an object");
    else {
      if (!nonEmpty(args.default)) err(f, "programArgs.default (the start command) is required");
      for (const [os, cmd] of Object.entries(args)) {
        if (!["default", "windows", "mac", "linux", "unix"].includes(os)) err(f, `programArgs.${os}: unknown OS key`);
        else if (!nonEmpty(cmd)) err(f, `programArgs.${os} must be a non-empty string`);
        else if (!/(^|[\/\\\s"])weft(\.exe)?"?\s+lsp(\s|$)/.test(cmd)) err(f, `programArgs.${os} must run "weft lsp" (got ${JSON.stringify(cmd)})`);
      }
    }
    const ftm = template.fileTypeMappings ?? [];
    const lm = template.languageMappings ?? [];
    if (!Array.isArray(ftm)) err(f, "fileTypeMappings must be an array");
    if (!Array.isArray(lm)) err(f, "languageMappings must be an array");
    if (Array.isArray(ftm) && Array.isArray(lm) && ftm.length + lm.length === 0) err(f, "maps no files: add fileTypeMappings or languageMappings");
    const seen = new Map();
    (Array.isArray(ftm) ? ftm : []).forEach((m, i) => {
      const at = `fileTypeMappings[${i}]`;
      if (!isObject(m)) return err(f, `${at} must be an object`);
      if (!nonEmpty(m.languageId)) err(f, `${at}.languageId must be a non-empty string`);
      if (!isObject(m.fileType)) return err(f, `${at}.fileType must be an object`);
      const { name, patterns } = m.fileType;
      if (name === undefined && patterns === undefined) err(f, `${at}.fileType needs name or patterns`);
      if (name !== undefined && !nonEmpty(name)) err(f, `${at}.fileType.name must be a non-empty string`);
      if (patterns !== undefined) {
        if (!Array.isArray(patterns) || patterns.length === 0) err(f, `${at}.fileType.patterns must be a non-empty array`);
        else
          for (const p of patterns) {
            if (!nonEmpty(p) || /[\/\\]/.test(p)) err(f, `${at}: bad pattern ${JSON.stringify(p)} (a file name glob like "*.py")`);
            else if (seen.has(p)) err(f, `${at}: pattern ${p} is also mapped by ${seen.get(p)}`);
            else seen.set(p, at);
          }
      }
    });
    (Array.isArray(lm) ? lm : []).forEach((m, i) => {
      const at = `languageMappings[${i}]`;
      if (!isObject(m) || !nonEmpty(m.language) || !nonEmpty(m.languageId)) err(f, `${at} needs language and languageId strings`);
    });
  }
}

for (const file of ["settings.json", "initializationOptions.json", "clientSettings.json"]) {
  const value = load(file);
  if (value !== undefined && !isObject(value)) err(file, "must be a JSON object");
}
const init = load("initializationOptions.json", false);
if (isObject(init) && init.telemetry !== undefined) {
  if (!isObject(init.telemetry) || typeof init.telemetry.enabled !== "boolean") err("initializationOptions.json", "telemetry.enabled must be a boolean");
  else if (init.telemetry.enabled !== false) err("initializationOptions.json", "telemetry must be opt-in (enabled: false by default)");
}
const client = load("clientSettings.json", false);
if (isObject(client)) {
  const known = new Set(["caseSensitive", "lineCommentPrefix", "blockCommentPrefix", "blockCommentSuffix", "completion", "workspaceSymbol", "format", "editor", "onTypeFormatting", "jsonc", "inlayHint", "breadcrumbs", "structureView", "documentSymbol", "semanticTokens", "diagnostics", "codeLens"]);
  for (const key of Object.keys(client)) if (!known.has(key)) err("clientSettings.json", `unknown key "${key}"`);
  if (client.completion !== undefined && !isObject(client.completion)) err("clientSettings.json", "completion must be an object");
}
if (!existsSync(join(dir, "README.md")) && !existsSync(join(dir, "..", "README.md"))) err("README.md", "missing");

if (errors.length > 0) {
  console.error(`LSP4IJ template ${dir}: ${errors.length} problem(s)`);
  for (const e of errors) console.error(`  - ${e}`);
  process.exit(1);
}
const t = template;
console.log(`LSP4IJ template ${dir}: ok (${t.id}: "${t.programArgs.default}", ${(t.fileTypeMappings ?? []).length} file type mappings)`);
