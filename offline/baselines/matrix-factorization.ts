/**
 * Implicit-feedback matrix factorisation baseline: BPR (Rendle et al. 2009) trained by SGD on
 * Float32Arrays, with an item bias, deterministic for a given seed. Positives are the (user, video)
 * pairs with a CLICK or a WATCH of more than 0 s in the training days; negatives are drawn
 * uniformly from the training items, so the bias learns popularity and the factors learn taste.
 */
import { SeededRng } from '../../core/clock.js';
import { EventType } from '../../core/events.js';
import { readEventBatches, readWorldManifest } from '../world/reader.js';
import { topK } from './top-k.js';

/** Options of {@link MatrixFactorization.fit}. Defaults in brackets. */
export interface MfOptions {
  /** Days to train on [manifest trainDays]. */
  readonly days?: readonly number[];
  /** Factor width [32]. */
  readonly dim?: number;
  /** Passes over the positive pairs [30]. */
  readonly epochs?: number;
  /** SGD learning rate [0.05]. */
  readonly learningRate?: number;
  /** L2 regularisation [0.005]. */
  readonly l2?: number;
  /** Seed of initialisation and sampling [1]. */
  readonly seed?: number;
}

/** Resolves and validates MF options (TypeError naming the bad option). */
export function resolveMfOptions(o: MfOptions): Required<Omit<MfOptions, 'days'>> & { days: readonly number[] | undefined } {
  const r = {
    days: o.days,
    dim: o.dim ?? 32,
    epochs: o.epochs ?? 30,
    learningRate: o.learningRate ?? 0.05,
    l2: o.l2 ?? 0.005,
    seed: o.seed ?? 1,
  };
  if (!Number.isInteger(r.dim) || r.dim < 1) throw new TypeError(`MF option dim must be a positive integer, got ${r.dim}`);
  if (!Number.isInteger(r.epochs) || r.epochs < 0) throw new TypeError(`MF option epochs must be a non-negative integer, got ${r.epochs}`);
  if (!(r.learningRate > 0)) throw new TypeError(`MF option learningRate must be > 0, got ${r.learningRate}`);
  if (!(r.l2 >= 0)) throw new TypeError(`MF option l2 must be >= 0, got ${r.l2}`);
  return r;
}

/** (user, video) positive pairs, deduplicated. */
export interface ImplicitPairs {
  readonly userIds: readonly number[];
  readonly videoIds: readonly number[];
}

/** A trained BPR model. */
export class MatrixFactorization {
  readonly dim: number;
  readonly #userIndex: Map<number, number>;
  readonly #itemIds: Int32Array | Float64Array;
  readonly #userF: Float32Array;
  readonly #itemF: Float32Array;
  readonly #itemBias: Float32Array;
  /** Training positives per user index (for excludeWatched). */
  readonly #seen: Map<number, Set<number>>;

  private constructor(
    dim: number,
    userIndex: Map<number, number>,
    itemIds: Float64Array,
    userF: Float32Array,
    itemF: Float32Array,
    itemBias: Float32Array,
    seen: Map<number, Set<number>>,
  ) {
    this.dim = dim;
    this.#userIndex = userIndex;
    this.#itemIds = itemIds;
    this.#userF = userF;
    this.#itemF = itemF;
    this.#itemBias = itemBias;
    this.#seen = seen;
  }

  /** Number of items the model can rank (those with a training positive). */
  get numItems(): number {
    return this.#itemIds.length;
  }

  /** Reads training positives from a world directory and trains. */
  static async fit(dir: string, opts: MfOptions = {}): Promise<MatrixFactorization> {
    const m = await readWorldManifest(dir);
    const users: number[] = [];
    const videos: number[] = [];
    const seen = new Set<string>();
    for await (const batch of readEventBatches(dir, { days: opts.days ?? m.split.trainDays })) {
      for (const e of batch) {
        if (e.type !== EventType.CLICK && !(e.type === EventType.WATCH && e.watchSeconds > 0)) continue;
        const key = `${e.userId}:${e.videoId}`;
        if (seen.has(key)) continue;
        seen.add(key);
        users.push(e.userId);
        videos.push(e.videoId);
      }
    }
    return MatrixFactorization.train({ userIds: users, videoIds: videos }, opts);
  }

  /** Trains on explicit pairs (deduplicated by the caller). */
  static train(pairs: ImplicitPairs, opts: MfOptions = {}): MatrixFactorization {
    const o = resolveMfOptions(opts);
    const userIndex = new Map<number, number>();
    const itemIndex = new Map<number, number>();
    const n = pairs.userIds.length;
    const pu = new Int32Array(n);
    const pi = new Int32Array(n);
    for (let p = 0; p < n; p++) {
      const u = pairs.userIds[p] as number;
      const v = pairs.videoIds[p] as number;
      let ui = userIndex.get(u);
      if (ui === undefined) userIndex.set(u, (ui = userIndex.size));
      let vi = itemIndex.get(v);
      if (vi === undefined) itemIndex.set(v, (vi = itemIndex.size));
      pu[p] = ui;
      pi[p] = vi;
    }
    const d = o.dim;
    const nu = userIndex.size;
    const ni = itemIndex.size;
    const rng = new SeededRng(o.seed);
    const userF = new Float32Array(nu * d);
    const itemF = new Float32Array(ni * d);
    const bias = new Float32Array(ni);
    for (let i = 0; i < userF.length; i++) userF[i] = 0.1 * rng.normal();
    for (let i = 0; i < itemF.length; i++) itemF[i] = 0.1 * rng.normal();
    const seenByUser = new Map<number, Set<number>>();
    for (let p = 0; p < n; p++) {
      let s = seenByUser.get(pu[p] as number);
      if (s === undefined) seenByUser.set(pu[p] as number, (s = new Set()));
      s.add(pi[p] as number);
    }
    const lr = o.learningRate;
    const reg = o.l2;
    const order = new Uint32Array(n);
    for (let p = 0; p < n; p++) order[p] = p;
    for (let epoch = 0; epoch < o.epochs && ni > 1; epoch++) {
      for (let p = n - 1; p > 0; p--) {
        const j = rng.int(p + 1);
        const t = order[p] as number;
        order[p] = order[j] as number;
        order[j] = t;
      }
      for (let s = 0; s < n; s++) {
        const p = order[s] as number;
        const u = pu[p] as number;
        const i = pi[p] as number;
        let j = rng.int(ni);
        const userSeen = seenByUser.get(u);
        for (let tries = 0; tries < 5 && userSeen?.has(j) === true; tries++) j = rng.int(ni);
        const uo = u * d;
        const io = i * d;
        const jo = j * d;
        let x = (bias[i] as number) - (bias[j] as number);
        for (let f = 0; f < d; f++) x += (userF[uo + f] as number) * ((itemF[io + f] as number) - (itemF[jo + f] as number));
        const g = 1 / (1 + Math.exp(x)); // = sigmoid(-x): the BPR gradient weight
        for (let f = 0; f < d; f++) {
          const uf = userF[uo + f] as number;
          const vi = itemF[io + f] as number;
          const vj = itemF[jo + f] as number;
          userF[uo + f] = uf + lr * (g * (vi - vj) - reg * uf);
          itemF[io + f] = vi + lr * (g * uf - reg * vi);
          itemF[jo + f] = vj + lr * (-g * uf - reg * vj);
        }
        bias[i] = (bias[i] as number) + lr * (g - reg * (bias[i] as number));
        bias[j] = (bias[j] as number) + lr * (-g - reg * (bias[j] as number));
      }
    }
    const itemIds = new Float64Array(ni);
    for (const [id, idx] of itemIndex) itemIds[idx] = id;
    const seenIds = new Map<number, Set<number>>();
    for (const [u, s] of seenByUser) seenIds.set(u, new Set([...s].map((i) => itemIds[i] as number)));
    return new MatrixFactorization(d, userIndex, itemIds, userF, itemF, bias, seenIds);
  }

  /** Model score of (user, video); the item bias alone for unknown users; NaN for unknown videos. */
  scoresFor(userId: number): Float32Array {
    const ni = this.#itemIds.length;
    const d = this.dim;
    const scores = new Float32Array(ni);
    const u = this.#userIndex.get(userId);
    for (let i = 0; i < ni; i++) {
      let s = this.#itemBias[i] as number;
      if (u !== undefined) {
        const uo = u * d;
        const io = i * d;
        for (let f = 0; f < d; f++) s += (this.#userF[uo + f] as number) * (this.#itemF[io + f] as number);
      }
      scores[i] = s;
    }
    return scores;
  }

  /**
   * Top `k` video ids for `userId`, skipping `exclude` and, when `excludeWatched` (default true),
   * the user's training positives. Unknown users get the item-bias (popularity-like) order.
   */
  recommend(userId: number, k: number, excludeWatched = true, exclude: ReadonlySet<number> = new Set()): number[] {
    const scores = this.scoresFor(userId);
    const u = this.#userIndex.get(userId);
    const watched = excludeWatched && u !== undefined ? this.#seen.get(u) : undefined;
    const ids = this.#itemIds;
    const top = topK(scores, k, (i) => {
      const id = ids[i] as number;
      return exclude.has(id) || watched?.has(id) === true;
    });
    return top.map((i) => ids[i] as number);
  }
}
