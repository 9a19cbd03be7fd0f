// The collector's routes and CORS settings for serverless.yml, from the same file the collector and
// the local stack read (shared/collect/http-contract.json).
const contract = require('../shared/collect/http-contract.json');

module.exports = {
  events: Object.keys(contract.routes).map((path) => ({ httpApi: `POST ${path}` })),
  corsAllowMethods: contract.cors.allowMethods,
  corsAllowHeaders: contract.cors.allowHeaders,
  corsExposeHeaders: contract.cors.exposeHeaders,
  corsMaxAgeSeconds: contract.cors.maxAgeSeconds,
};
