// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const PIPELINES = ['collect', 'process', 'export', 'ops', 'personalize-deletion'];
const OFF_LIMITS_FOR_PRODUCT = { group: ['**/local/**', '**/bench/**', '**/test/**'], message: 'product code (functions/, shared/, schemas/) must not import local/, bench/ or test/' };
const SDK_TYPES_ONLY = { group: ['@aws-sdk/*'], allowTypeImports: true, message: 'only the adapters in shared/aws/ call the AWS SDK; elsewhere, its types only' };
const pipelineGroup = (names) => ({ group: names.map((n) => `**/${n}/**`), message: `${names.join(', ')}: another pipeline folder; move what is shared into the core of shared/` });

function importBoundaries() {
  const restrict = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });
  return [
    { files: ['functions/**/*.ts', 'schemas/**/*.ts'], rules: restrict(OFF_LIMITS_FOR_PRODUCT, SDK_TYPES_ONLY) },
    {
      files: ['shared/**/*.ts'],
      ignores: PIPELINES.map((p) => `shared/${p}/**`),
      rules: restrict(OFF_LIMITS_FOR_PRODUCT, SDK_TYPES_ONLY, { ...pipelineGroup(PIPELINES), message: 'the core of shared/ must not import a pipeline folder (collect, process, export, ops, personalize-deletion)' }),
    },
    // The AWS adapters implement ports some pipelines define: their types, and nothing else.
    {
      files: ['shared/aws/**/*.ts'],
      rules: {
        'no-restricted-imports': [
          'error',
          { patterns: [OFF_LIMITS_FOR_PRODUCT, { ...pipelineGroup(PIPELINES), allowTypeImports: true, message: 'an AWS adapter may import a pipeline\'s port types only' }] },
        ],
      },
    },
    ...PIPELINES.map((p) => ({
      files: [`shared/${p}/**/*.ts`],
      rules: restrict(OFF_LIMITS_FOR_PRODUCT, SDK_TYPES_ONLY, pipelineGroup(PIPELINES.filter((o) => o !== p))),
    })),
    {
      files: ['local/**/*.ts', 'cli/**/*.ts'],
      rules: restrict({ group: ['**/bench/**', '**/test/**'], message: 'the local stack and the operator CLIs must not import bench/ or test/' }),
    },
    {
      files: ['bench/**/*.ts'],
      rules: restrict({ regex: '(^|/)test/(?!support/)', message: 'benchmarks may use the test doubles (test/support/) only' }),
    },
  ];
}

export default tseslint.config(
  { ignores: ['node_modules/', '.serverless/', '.esbuild/', '.local/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
    },
  },
  // Import boundaries (README "Project layout"). What ships (handlers, the product library, the
  // schemas) never reaches into the local stack, the benchmarks or the tests. Inside shared/, the
  // core (everything outside the pipeline folders) never imports a pipeline folder, and a pipeline
  // folder never imports another: what two pipelines share belongs in the core. Only the adapters
  // in shared/aws/ call the AWS SDK (one file per service); elsewhere its types only. Benchmarks may use
  // the test doubles (test/support/) and nothing else of test/.
  ...importBoundaries(),
  { files: ['**/*.js', '**/*.cjs'], ...tseslint.configs.disableTypeChecked },
  // serverless.yml loads these with require().
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
