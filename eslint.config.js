// ESLint flat config (eslint 10 + typescript-eslint 8). No type-aware rules: they need the
// TypeScript program for every file and are too slow for `npm run lint` on each test run.
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

// eslint's own "recommended" rules. @eslint/js carries them but is not a root dependency;
// the same list is derived from the built-in rules' `recommended` flag when it is missing.
let jsRecommended;
try {
  jsRecommended = (await import('@eslint/js')).default.configs.recommended.rules;
} catch {
  const { builtinRules } = await import('eslint/use-at-your-own-risk');
  jsRecommended = Object.fromEntries(
    [...builtinRules]
      .filter(([, rule]) => rule.meta?.docs?.recommended && !rule.meta?.deprecated)
      .map(([name]) => [name, 'error']),
  );
}

const unusedVars = {
  args: 'after-used',
  argsIgnorePattern: '^_',
  varsIgnorePattern: '^_',
  caughtErrorsIgnorePattern: '^_',
  destructuredArrayIgnorePattern: '^_',
};

// Node globals for the repo's plain-JS scripts, taken from the running Node itself.
const nodeGlobals = Object.fromEntries(
  Object.getOwnPropertyNames(globalThis).map((name) => [name, 'readonly']),
);

export default defineConfig(
  globalIgnores([
    '**/node_modules/',
    '**/dist/',
    '**/.data/',
    '**/coverage/',
    '**/backups/',
  ]),
  {
    name: 'hearth/typescript',
    files: ['**/*.ts', '**/*.mts', '**/*.cts'],
    extends: [{ rules: jsRecommended }, tseslint.configs.recommended],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', unusedVars],
    },
  },
  {
    // Tests read loosely-typed JSON answers; `any` there is the honest type.
    name: 'hearth/tests',
    files: ['**/test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    name: 'hearth/scripts',
    files: ['*.js', '*.mjs', 'scripts/**/*.js', 'scripts/**/*.mjs', 'infra/**/*.mjs'],
    languageOptions: { globals: nodeGlobals },
    rules: { ...jsRecommended, 'no-unused-vars': ['error', unusedVars] },
  },
);
