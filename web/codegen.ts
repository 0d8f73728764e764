import type { CodegenConfig } from '@graphql-codegen/cli';

// Response and variable types come from the committed SDL, never by hand.
const config: CodegenConfig = {
  schema: '../api/schema.graphql',
  documents: ['src/**/*.ts', 'src/**/*.tsx', '!src/gql/**/*'],
  ignoreNoDocuments: false,
  generates: {
    './src/gql/': {
      preset: 'client',
      config: {
        scalars: { UUID: 'string', DateTime: 'string', JSON: 'any' },
        enumsAsTypes: true,
        useTypeImports: true,
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};
export default config;
