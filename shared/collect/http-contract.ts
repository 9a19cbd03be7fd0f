import contract from './http-contract.json' with { type: 'json' };

/** The collector's HTTP surface (routes, CORS), shared with serverless.yml through serverless/collector-http.cjs. */
export const routeKinds: Readonly<Record<string, string>> = contract.routes;
export const cors = contract.cors;
