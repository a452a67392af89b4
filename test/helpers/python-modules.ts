// Whether python3 can import the modules a test writes its data with (pyarrow where the test
// needs files the way another writer lays them out); tests skip with a printed reason where not.
import { execFileSync } from 'node:child_process';

export function pythonHas(...modules: string[]): boolean {
  try {
    execFileSync('python3', ['-c', `import ${modules.join(', ')}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
