// The linter `make lint` (and so `make test`) runs: typescript-eslint with
// type information, a small rule set aimed at what tsc lets through — unused
// code, and promises nobody awaits or that are passed where a plain callback
// is expected.

import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'build/**', 'dist/**'] },
  {
    files: ['server/**/*.ts', 'test/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { args: 'after-used', argsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      '@typescript-eslint/no-unused-expressions': 'error',
      // node:test's test() and describe() return promises the runner awaits.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      'no-constant-binary-expression': 'error',
      // `void someName;` only silences the unused-code checks: delete the name instead.
      'no-restricted-syntax': ['error', {
        selector: "ExpressionStatement > UnaryExpression[operator='void'] > Identifier.argument",
        message: 'void on a bare name hides unused code; remove the name (or use it)',
      }],
      'no-unreachable': 'error',
    },
  },
  {
    // A function in server/ fits on a screen (80 lines without blank lines
    // and comments), or says why not: an eslint-disable-next-line for this
    // rule with the reason after "--".
    files: ['server/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
);
