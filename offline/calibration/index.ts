/** Calibration fitting: isotonic (PAV) and temperature scaling. Apply with core/model/calibration.ts. */
export { fitIsotonic, pav } from './isotonic.js';
export type { IsotonicOptions, PavBlock } from './isotonic.js';
export { fitTemperature, temperatureLogLoss } from './temperature.js';
export type { TemperatureOptions } from './temperature.js';
