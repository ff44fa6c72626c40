// Domain vocabulary: commands, results, reject codes and the read views the publisher mirrors.
// Invariants: every money, price and quantity value is a safe integer (no floats anywhere);
// reject codes are a closed set and are stored in the log with the command, so a replay
// reproduces them exactly. This module imports nothing with I/O, a clock or randomness.

/** Branded integers: the brand is compile-time only; constructors in ./ints.ts assert the value. */
export type Seq = number & { readonly __brand: 'Seq' };
export type PriceTicks = number & { readonly __brand: 'PriceTicks' };
export type QtyLots = number & { readonly __brand: 'QtyLots' };
/** Collateral in minor units (e.g. cents). Notional = priceTicks * qtyLots, in the same unit. */
export type Amount = number & { readonly __brand: 'Amount' };
export type OrderId = number & { readonly __brand: 'OrderId' };
export type AccountId = string;
/** What an account id may look like (checked at the edges: HTTP schemas, view rooms, the CLI). */
export const ACCOUNT_ID = /^[A-Za-z0-9_.-]{1,64}$/;
export type Side = 'buy' | 'sell';
export type TimeInForce = 'GTC' | 'IOC';

export interface MarketSpec {
  symbol: string;
  /** The mark before the market's first trade (docs/risk.md); none: no band until then. */
  referencePrice?: number;
}

export interface DomainLimits {
  /** Open (resting) orders one account may hold across all markets. */
  maxOpenOrdersPerAccount: number;
  maxPriceTicks: number;
  maxQtyLots: number;
  /** Largest single deposit/withdraw amount, and largest collateral an account may hold. */
  maxAmount: number;
  maxAccounts: number;
  /** |position| plus resting orders on either side, per account per market (default maxQtyLots). */
  maxPositionLots?: number;
  /** Σ long positions per market (default 10 × maxPositionLots). */
  maxOpenInterestLots?: number;
  /** Deposits − withdrawals over the whole exchange (default 1000 × maxAmount). */
  maxTotalDeposits?: number;
}

/** Risk parameters in basis points (docs/risk.md). */
export interface RiskConfig {
  /** Maintenance margin; below it an account is liquidated. Default 500 (5%). */
  maintenanceMarginBps?: number;
  /** Orders and trades stay within ± this of the mark. Default 250 (2.5%). */
  priceBandBps?: number;
  /** Liquidation fee to the insurance fund, of the notional taken over. Default 50. */
  liquidationFeeBps?: number;
}

export interface DomainConfig {
  markets: MarketSpec[];
  /** Initial margin = ceil(notional / leverage). Integer >= 1. */
  leverage: number;
  limits: DomainLimits;
  risk?: RiskConfig;
}

export type Command =
  | { type: 'deposit'; account: AccountId; amount: Amount }
  | { type: 'withdraw'; account: AccountId; amount: Amount }
  | {
      type: 'place_order';
      account: AccountId;
      market: string;
      side: Side;
      price: PriceTicks;
      qty: QtyLots;
      tif: TimeInForce;
    }
  | { type: 'cancel_order'; account: AccountId; orderId: OrderId }
  /**
   * Written by a core when it becomes primary for `epoch` (never accepted from clients): marks in
   * the log where each epoch starts, like Raft's no-op at the start of a term. Changes no state.
   */
  | { type: 'epoch_start'; epoch: number; node: string };

export type CommandType = Command['type'];

/** What the sequencer hands the state machine: the command plus the order it was given. */
export interface Envelope {
  seq: Seq;
  /** Wall-clock ms assigned by the sequencer; the state machine never reads a clock. */
  tsMs: number;
  command: Command;
}

export const REJECT_CODES = [
  'insufficient_collateral',
  'unknown_account',
  'unknown_market',
  'unknown_order',
  'not_order_owner',
  'too_many_orders',
  'too_many_accounts',
  'amount_limit_exceeded',
  'price_out_of_range',
  'qty_out_of_range',
  'price_out_of_band',
  'position_limit_exceeded',
  'open_interest_limit_exceeded',
  'deposit_limit_exceeded',
] as const;
export type RejectCode = (typeof REJECT_CODES)[number];

export interface Fill {
  makerOrderId: OrderId;
  makerAccount: AccountId;
  price: PriceTicks;
  qty: QtyLots;
}

export type Result =
  | {
      status: 'accepted';
      /** place_order: the new order's id (equal to the command's seq). cancel_order: the cancelled id. */
      orderId?: OrderId;
      /** place_order: fills in match order. */
      fills?: Fill[];
      /** place_order: quantity left resting on the book (GTC) — 0 when fully filled or IOC. */
      restingQty?: QtyLots;
      /** place_order: quantity cancelled (IOC remainder). */
      cancelledQty?: QtyLots;
      /** place_order: own resting orders cancelled by self-trade prevention. */
      selfTradeCancelled?: OrderId[];
      /** place_order: other accounts' resting orders cancelled because their price left the band. */
      bandCancelled?: OrderId[];
      /** place_order: accounts liquidated after this command's trades (omitted when none). */
      liquidated?: LiquidationView[];
      /** deposit/withdraw: collateral after the command. */
      collateral?: Amount;
    }
  | { status: 'rejected'; code: RejectCode; detail?: string };

export interface PositionView {
  market: string;
  /** Signed: > 0 long, < 0 short. */
  qty: number;
  /** Integer cost of the open position: sum of price*qty of the lots still open. */
  costBasis: number;
  /** floor(costBasis / |qty|), 0 when flat. Display only: PnL is computed from costBasis. */
  avgEntryPrice: number;
  /** Realized PnL accumulated in this market (already added to collateral). */
  realizedPnl: number;
}

export interface OrderView {
  orderId: OrderId;
  account: AccountId;
  market: string;
  side: Side;
  price: PriceTicks;
  qty: QtyLots;
  remaining: QtyLots;
  tif: TimeInForce;
  seq: Seq;
}

export interface AccountView {
  id: AccountId;
  /** Cash collateral including realized PnL. */
  collateral: number;
  /** Initial margin held by open positions and resting orders. */
  marginRequired: number;
  /** collateral - marginRequired (may be negative after adverse fills). */
  available: number;
  positions: PositionView[];
  openOrders: OrderView[];
}

export interface BookLevel {
  price: number;
  qty: number;
  orders: number;
}

export interface BookView {
  market: string;
  /** Best first: bids descending price, asks ascending price. */
  bids: BookLevel[];
  asks: BookLevel[];
}

export interface TradeView {
  seq: Seq;
  tsMs: number;
  market: string;
  price: number;
  qty: number;
  /** Side of the aggressor (taker). */
  takerSide: Side;
  makerOrderId: OrderId;
  takerOrderId: OrderId;
}

/** One position of one account taken over by the insurance fund (docs/risk.md). */
export interface LiquidationView {
  seq: Seq;
  account: AccountId;
  market: string;
  /** The position taken over (signed, as the account held it). */
  qty: number;
  /** The mark it was taken over at. */
  price: number;
  /** Paid to the insurance fund. */
  fee: number;
  /** Loss beyond the account's collateral, covered by the fund (0 unless the risk rules failed). */
  deficit: number;
}

/** The insurance-fund account: reserved (client account ids cannot start with '#'). */
export const INSURANCE_ACCOUNT = '#insurance';

/** What one or more applied commands touched: the publisher mirrors exactly these. */
export interface Effects {
  accounts: Set<AccountId>;
  markets: Set<string>;
  trades: TradeView[];
  liquidations: LiquidationView[];
}
