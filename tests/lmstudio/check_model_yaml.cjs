// Validates LM Studio virtual-model definitions (model.yaml, read into JSON by the test) against
// LM Studio's own published zod schemas: the file's shape (lms-shared-types'
// virtualModelDefinitionSchema), then every config and suggestion field against the value type
// LM Studio declares for its key (lms-kv-config's globalConfigSchematics).
// stdin: {"name": definition, ...}; stdout: {"name": [problem, ...], ...} (empty list: valid).
"use strict";
const { virtualModelDefinitionSchema } = require("@lmstudio/lms-shared-types");
const { globalConfigSchematics } = require("@lmstudio/lms-kv-config");

function fieldProblems(fields, where) {
  const problems = [];
  for (const field of fields || []) {
    let known;
    try {
      known = globalConfigSchematics.obtainFieldByFullKey(field.key);
    } catch (error) {
      problems.push(`${where}: unknown key ${field.key}`);
      continue;
    }
    const parsed = known.schema.safeParse(field.value);
    if (!parsed.success) {
      problems.push(`${where}: ${field.key}: ${parsed.error.issues.map(describe).join("; ")}`);
    }
  }
  return problems;
}

function describe(issue) {
  return `${issue.path.join(".") || "(value)"}: ${issue.message}`;
}

function check(definition) {
  const parsed = virtualModelDefinitionSchema.strict().safeParse(definition);
  if (!parsed.success) {
    return parsed.error.issues.map(describe);
  }
  const config = definition.config || {};
  const problems = [
    ...fieldProblems(config.load && config.load.fields, "config.load"),
    ...fieldProblems(config.operation && config.operation.fields, "config.operation"),
  ];
  (definition.suggestions || []).forEach((suggestion, i) => {
    problems.push(...fieldProblems(suggestion.fields, `suggestions.${i}`));
  });
  return problems;
}

let input = "";
process.stdin.on("data", chunk => { input += chunk; });
process.stdin.on("end", () => {
  const files = JSON.parse(input);
  const result = {};
  for (const [name, definition] of Object.entries(files)) {
    result[name] = check(definition);
  }
  process.stdout.write(JSON.stringify(result));
});
