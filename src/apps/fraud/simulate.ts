// Customer series straight from the simulator's report model (the ground truth of what meters send), for
// evaluations that do not need the store; the same scorer reads them as it reads stored rows.
import { createFleet, meterReports, tsOf, type Fleet, type FleetOptions } from '../../meter/index.js';
import { SeriesBuilder, type CustomerSeries } from './series.js';

/** Fleet options as a worker receives them (plain data: start as epoch ms). */
export type PlainFleetOptions = Omit<FleetOptions, 'start'> & { start: number };

export function plainFleetOptions(f: Fleet): PlainFleetOptions {
  return { ...f.options, start: f.start } as PlainFleetOptions;
}

/** Local days [firstDay, firstDay + days) of meter `index`, from the report model. */
export function simulatedSeries(fleet: Fleet, index: number, firstDay = fleet.firstDay, days = fleet.days): CustomerSeries {
  const m = fleet.meter(index);
  const b = new SeriesBuilder({ meterId: m.serial, customerId: m.customerId, customerClass: m.customerClass, contractedKw: m.contractedKw, supplyKv: m.supplyKv }, firstDay, days);
  for (const r of meterReports(fleet, index, tsOf(firstDay, 0), tsOf(firstDay + days - 1, 95))) b.add(r);
  return b.finish();
}

const fleets = new Map<string, Fleet>();
/** A fleet per options (workers rebuild it once; it is a pure function of the options). */
export function fleetOf(o: PlainFleetOptions): Fleet {
  const k = JSON.stringify(o);
  let f = fleets.get(k);
  if (!f) fleets.set(k, (f = createFleet(o)));
  return f;
}
