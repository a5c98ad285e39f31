-- Apply one invoice to one customer's state, atomically and at most once (stream/store.py).
--
-- KEYS[1] customer hash      {prefix}cust:{<id>}
-- KEYS[2] applied invoices   {prefix}cust:{<id>}:inv   (invoice id -> event time)
-- KEYS[3] category spend     {prefix}cust:{<id>}:cat_micros   (category -> net spend, micro-units)
-- ARGV    invoice_id, ts (epoch s), kind (P purchase | C cancellation | A adjustment |
--         O other, e.g. postage only),
--         spend, items, category spend ("cat spend cat spend ..."),
--         score_json ('' = not a first purchase), features_json, due (epoch s)
-- Money is in integer micro-units (`stream.store.MICROS`): sums are exact, whatever the order
-- invoices arrive in, and HINCRBY is cheaper for Redis than HINCRBYFLOAT's long doubles.
-- Returns {status[, score_json]}; status is one of
--   first          the invoice is the customer's first purchase; the score was stored
--   dup_first      already applied, and it was the first purchase: the stored score
--   dup            already applied: nothing changed
--   cancel_unknown a cancellation for a customer without any state: recorded, not scored
--   applied        counted into the aggregates
--   overflow       a money total of the customer would leave the 64-bit range: nothing of the
--                  invoice was kept (not even as applied), the caller dead-letters it
local cust, invs, cats = KEYS[1], KEYS[2], KEYS[3]
local inv, ts_s, kind = ARGV[1], ARGV[2], ARGV[3]

if redis.call('HSETNX', invs, inv, ts_s) == 0 then
  if redis.call('HGET', cust, 'fp_invoice') == inv then
    return {'dup_first', redis.call('HGET', cust, 'score')}
  end
  return {'dup'}
end

local ts = tonumber(ts_s)
local known = redis.call('EXISTS', cust) == 1
local fp_at = tonumber(redis.call('HGET', cust, 'fp_at'))
-- after the first purchase, what happens within the horizon is the label (online learning)
local in_horizon = fp_at ~= nil and ts >= fp_at
  and ts <= tonumber(redis.call('HGET', cust, 'fp_due'))

-- Money first, each add checked: HINCRBY refuses to overflow 64 bits (after thousands of
-- invoices at the per-invoice limit, stream.store.MAX_INVOICE_MONEY), and a script's writes
-- before an error would stay. On a refusal the adds made are taken back (an invoice's amounts
-- are below 2^53 micro-units, exact as Lua numbers) and the invoice is not marked applied.
-- (pcall returns a table only for an error; no closure or table on this path: it runs for
-- every invoice.)
local made, failed = 0, false
if type(redis.pcall('HINCRBY', cust, 'spend_micros', ARGV[4])) == 'table' then
  failed = true
else
  made = 1
  for cat, amount in string.gmatch(ARGV[6], '(%S+) (%S+)') do
    if type(redis.pcall('HINCRBY', cats, cat, amount)) == 'table' then
      failed = true
      break
    end
    made = made + 1
  end
end
if not failed and in_horizon then  -- the last add: nothing after it to take back
  failed = type(redis.pcall('HINCRBY', cust, 'h_spend_micros', ARGV[4])) == 'table'
end
if failed then
  local adds = {{cust, 'spend_micros', ARGV[4]}}  -- in the order they were made
  for cat, amount in string.gmatch(ARGV[6], '(%S+) (%S+)') do
    adds[#adds + 1] = {cats, cat, amount}
  end
  for i = 1, made do
    local back = -tonumber(adds[i][3])
    if back ~= 0 then  -- Redis reads '-0' as no integer
      redis.call('HINCRBY', adds[i][1], adds[i][2], string.format('%.0f', back))
    end
  end
  redis.call('HDEL', invs, inv)
  return {'overflow'}
end

redis.call('HINCRBY', cust, 'items', ARGV[5])
if kind == 'C' then
  redis.call('HINCRBY', cust, 'cancellations', 1)
elseif kind == 'P' then
  redis.call('HINCRBY', cust, 'orders', 1)
elseif kind == 'A' then
  redis.call('HINCRBY', cust, 'adjustments', 1)
else
  redis.call('HINCRBY', cust, 'others', 1)
end
local first = tonumber(redis.call('HGET', cust, 'first_seen'))
if first == nil or ts < first then redis.call('HSET', cust, 'first_seen', ts_s) end
local last = tonumber(redis.call('HGET', cust, 'last_seen'))
if last == nil or ts > last then redis.call('HSET', cust, 'last_seen', ts_s) end

if fp_at ~= nil then
  if in_horizon then
    if kind == 'P' then redis.call('HINCRBY', cust, 'h_orders', 1) end
    redis.call('HINCRBY', cust, 'h_items', ARGV[5])
  end
  return {'applied'}
end
if kind == 'P' and ARGV[7] ~= '' then
  redis.call('HSET', cust, 'fp_invoice', inv, 'fp_at', ts_s, 'fp_due', ARGV[9],
    'score', ARGV[7], 'features', ARGV[8], 'h_orders', 0, 'h_spend_micros', 0, 'h_items', 0)
  return {'first', ARGV[7]}
end
if kind == 'C' and not known then return {'cancel_unknown'} end
return {'applied'}
