// Version and build information. The bundler replaces the BUILD_* constants with
// values from the build (git commit, commit time); run from source they stay null.
import pkg from '../../package.json' with { type: 'json' };

declare const __BUILD_COMMIT__: string | undefined;
declare const __BUILD_DATE__: string | undefined;

export interface BuildInfo {
  name: string;
  version: string;
  commit: string | null;
  created: string | null;
  node: string;
}

export const BUILD_INFO: BuildInfo = {
  name: pkg.name,
  version: pkg.version,
  commit: typeof __BUILD_COMMIT__ === 'string' && __BUILD_COMMIT__ !== '' ? __BUILD_COMMIT__ : null,
  created: typeof __BUILD_DATE__ === 'string' && __BUILD_DATE__ !== '' ? __BUILD_DATE__ : null,
  node: process.version,
};
