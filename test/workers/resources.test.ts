// Reading the container's limits from cgroup files (v1 and v2 layouts, as real
// files in a temporary directory), and what `auto` makes of them.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { autoWorkers, heapChosen, readCgroupLimits, sizeFor } from '../../src/config/resources.ts';

const MIB = 1024 * 1024;
const dirs: string[] = [];
function cgroup(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'es13-cgroup-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('cgroup limits', () => {
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('reads cgroup v2 memory.max and cpu.max', () => {
    assert.deepEqual(readCgroupLimits(cgroup({ 'memory.max': '134217728\n', 'cpu.max': '150000 100000\n' })), {
      memoryBytes: 128 * MIB,
      cpuQuota: 1.5,
    });
    assert.deepEqual(readCgroupLimits(cgroup({ 'memory.max': 'max\n', 'cpu.max': 'max 100000\n' })), {
      memoryBytes: null,
      cpuQuota: null,
    });
  });

  it('reads cgroup v1 memory.limit_in_bytes and the CFS quota', () => {
    assert.deepEqual(
      readCgroupLimits(
        cgroup({
          'memory/memory.limit_in_bytes': '268435456\n',
          'cpu/cpu.cfs_quota_us': '200000\n',
          'cpu/cpu.cfs_period_us': '100000\n',
        }),
      ),
      { memoryBytes: 256 * MIB, cpuQuota: 2 },
    );
    // v1 writes "no limit" as a huge number and a quota of -1.
    assert.deepEqual(
      readCgroupLimits(
        cgroup({
          'memory/memory.limit_in_bytes': '9223372036854771712\n',
          'cpu/cpu.cfs_quota_us': '-1\n',
          'cpu/cpu.cfs_period_us': '100000\n',
        }),
      ),
      { memoryBytes: null, cpuQuota: null },
    );
  });

  it('finds no limits where there is no cgroup file', () => {
    assert.deepEqual(readCgroupLimits(cgroup({})), { memoryBytes: null, cpuQuota: null });
  });

  it('sizes workers from the CPU quota, never above the CPUs there are', () => {
    assert.equal(autoWorkers({ memoryBytes: null, cpuQuota: null }, 8), 8);
    assert.equal(autoWorkers({ memoryBytes: null, cpuQuota: 1.5 }, 8), 2);
    assert.equal(autoWorkers({ memoryBytes: null, cpuQuota: 0.5 }, 8), 1);
    assert.equal(autoWorkers({ memoryBytes: null, cpuQuota: 4 }, 2), 2);
  });

  it('sizes the in-flight budget, the connection limit and the heap from the memory limit', () => {
    assert.deepEqual(sizeFor({ memoryBytes: null, cpuQuota: null }, 1), {
      shareBytes: null,
      maxInFlight: 1000,
      maxConnections: 10_000,
      h2MaxStreams: 100,
      heapMiB: null,
    });
    const small = sizeFor({ memoryBytes: 128 * MIB, cpuQuota: null }, 1);
    assert.equal(small.maxInFlight, 682); // (128 - 64) MiB / 96 KiB
    assert.equal(small.heapMiB, 64);
    assert.equal(small.maxConnections, 528); // (128 - 64) MiB / (64 KiB + 10 streams x 6 KiB)
    assert.equal(small.h2MaxStreams, 10); // ((128 - 64) MiB / 528 connections - 64 KiB) / 6 KiB
    // Sessions and streams share the memory once: 10,000 connections of 10 streams need about 1.2 GiB.
    assert.equal(sizeFor({ memoryBytes: 1024 * MIB, cpuQuota: null }, 1).maxConnections, 7927);
    assert.equal(sizeFor({ memoryBytes: 1024 * MIB, cpuQuota: null }, 1).h2MaxStreams, 10);
    assert.equal(sizeFor({ memoryBytes: 2048 * MIB, cpuQuota: null }, 1).h2MaxStreams, 23); // (1984 MiB / 10,000 - 64 KiB) / 6 KiB
    assert.equal(
      sizeFor({ memoryBytes: 1024 * MIB, cpuQuota: null }, 1, 1000).h2MaxStreams,
      100,
      'sized for the connections the operator chose',
    );
    assert.equal(sizeFor({ memoryBytes: 8192 * MIB, cpuQuota: null }, 1).h2MaxStreams, 100, 'at most 100');
    assert.equal(sizeFor({ memoryBytes: 4096 * MIB, cpuQuota: null }, 1).maxConnections, 10_000, 'at most 10,000');
    assert.equal(sizeFor({ memoryBytes: 64 * MIB, cpuQuota: null }, 1).maxConnections, 100, 'never below 100');
    assert.equal(sizeFor({ memoryBytes: 1024 * MIB, cpuQuota: null }, 1).maxInFlight, 1000);
    // Two workers share the limit, less what the primary keeps.
    const two = sizeFor({ memoryBytes: 512 * MIB, cpuQuota: null }, 2);
    assert.equal(two.shareBytes, 224 * MIB);
    assert.equal(two.heapMiB, 112);
    assert.equal(sizeFor({ memoryBytes: 64 * MIB, cpuQuota: null }, 1).maxInFlight, 10, 'never below 10');
  });

  it('leaves the heap alone when the operator chose one', () => {
    assert.equal(heapChosen(['--max-old-space-size=300'], undefined), true);
    assert.equal(heapChosen([], '--enable-source-maps --max_old_space_size=300'), true);
    assert.equal(heapChosen(['--disable-sigusr1'], '--enable-source-maps'), false);
  });
});
