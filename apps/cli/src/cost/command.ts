// `sluice cost`: the steady-state cost of a fleet per sensor tier, from the benches' unit costs.
import type { Command } from '../commands';
import { estimateCosts, unmeasured } from './model';
import { COST_USAGE, parseCostOptions } from './options';
import { costJson, renderCostTables } from './render';

export const costCommand: Command = {
  name: 'cost',
  summary: 'Estimate storage, messages and CPU of a fleet per sensor tier (docs/COSTS.md)',
  async run(args, ctx) {
    const o = parseCostOptions(args);
    if (o === 'help') {
      ctx.out.write(`${COST_USAGE}\n`);
      return 0;
    }
    const estimates = estimateCosts(o.fleet, o.unitCosts);
    const missing = unmeasured(o.unitCosts);
    ctx.out.write(
      o.json
        ? `${JSON.stringify(costJson(o.fleet, estimates, o.unitCosts, missing, o.unitCostsFile), null, 2)}\n`
        : `${renderCostTables(o.fleet, estimates, missing, o.unitCostsFile)}\n`,
    );
    return 0;
  },
};
