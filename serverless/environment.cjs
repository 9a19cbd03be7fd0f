// The functions' environment for serverless.yml, from the one list of variables
// (serverless/environment.json, which the local stack reads too):
//   provider.environment:           ${file(./serverless/environment.cjs):provider}
//   functions.<name>.environment:   ${file(./serverless/environment.cjs):functions.<name>}
// Only variables with a `template` value are set in AWS; the others exist locally only. A variable
// marked `omitWhenEmpty` is resolved here and left out when its value is empty, so a stack that does
// not use it (TARGETS_FILE without param targetsFile) has exactly the template it had before.
const { variables } = require('./environment.json');

/** `${source:address}` -> `source:address`, what resolveVariable takes; one variable and nothing else. */
function variableOf(name, template) {
  const match = /^\$\{([^{}]+)\}$/.exec(template);
  if (!match) throw new Error(`serverless/environment.json: ${name} is omitWhenEmpty, so its template must be one \${...} variable, not "${template}"`);
  return match[1];
}

/** A resolver of `{NAME: template value}` for the variables whose `functions` match, in the list's order. */
function environment(matches) {
  const listed = Object.entries(variables).filter(([, variable]) => variable.template !== undefined && matches(variable.functions));
  return async ({ resolveVariable }) => {
    const out = {};
    for (const [name, variable] of listed) {
      if (variable.omitWhenEmpty !== true) {
        out[name] = variable.template;
        continue;
      }
      const value = await resolveVariable(variableOf(name, variable.template));
      if (value !== undefined && value !== null && String(value) !== '') out[name] = value;
    }
    return out;
  };
}

const functionNames = [...new Set(Object.values(variables).flatMap((v) => (Array.isArray(v.functions) ? v.functions : [])))];

module.exports = {
  // Every function gets these (osls merges provider.environment into each function's).
  provider: environment((functions) => functions === 'all'),
  functions: Object.fromEntries(functionNames.map((fn) => [fn, environment((functions) => Array.isArray(functions) && functions.includes(fn))])),
};
