// The functions' environment for serverless.yml, from the one list of variables
// (serverless/environment.json, which the local stack reads too):
//   provider.environment:           ${file(./serverless/environment.cjs):provider}
//   functions.<name>.environment:   ${file(./serverless/environment.cjs):functions.<name>}
// Only variables with a `template` value are set in AWS; the others exist locally only.
const { variables } = require('./environment.json');

/** `{NAME: template value}` of the variables whose `functions` match, in the list's order. */
function environment(matches) {
  const out = {};
  for (const [name, variable] of Object.entries(variables)) {
    if (variable.template !== undefined && matches(variable.functions)) out[name] = variable.template;
  }
  return out;
}

const functionNames = [...new Set(Object.values(variables).flatMap((v) => (Array.isArray(v.functions) ? v.functions : [])))];

module.exports = {
  // Every function gets these (osls merges provider.environment into each function's).
  provider: environment((functions) => functions === 'all'),
  functions: Object.fromEntries(functionNames.map((fn) => [fn, environment((functions) => Array.isArray(functions) && functions.includes(fn))])),
};
