-- Test cases of the Argo CD health check and rotate action. Run: lua5.4 health_test.lua
-- (from any folder). Prints one line per case and "N passed, N failed"; exits 1 on failure.
local here = arg[0]:match("(.*/)") or "./"
local passed, failed = 0, 0

local function run(file, object)
  local env = {obj = object, ipairs = ipairs, pairs = pairs, os = {date = os.date}}
  local chunk = assert(loadfile(here .. file, "t", env))
  return chunk()
end

local function check(name, ok, detail)
  if ok then
    passed = passed + 1
    print("ok     " .. name)
  else
    failed = failed + 1
    print("FAILED " .. name .. ": " .. tostring(detail))
  end
end

local function resource(generation, status)
  return {metadata = {name = "web", generation = generation}, status = status}
end

local ready = {type = "Ready", status = "True", reason = "Reconciled", message = "ok"}
local broken = {type = "Ready", status = "False", reason = "BackendCredentialsRejected", message = "key rejected"}
local cases = {
  {"no status yet is Progressing", resource(1, nil), "Progressing"},
  {"conditions missing is Progressing", resource(1, {}), "Progressing"},
  {"observedGeneration behind is Progressing", resource(3, {observedGeneration = 2, conditions = {ready}}), "Progressing"},
  {"observedGeneration missing is Progressing", resource(3, {conditions = {ready}}), "Progressing"},
  {"Ready=True at the generation is Healthy", resource(2, {observedGeneration = 2, conditions = {ready}}), "Healthy"},
  {"Ready=False is Degraded", resource(2, {observedGeneration = 2, conditions = {broken}}), "Degraded"},
  {"other conditions only is Progressing",
    resource(1, {observedGeneration = 1, conditions = {{type = "DomainVerified", status = "False"}}}), "Progressing"},
}
for _, case in ipairs(cases) do
  local name, object, want = case[1], case[2], case[3]
  local hs = run("oauth-operator.dev/health/health.lua", object)
  check("health: " .. name, hs.status == want, "got " .. tostring(hs.status))
end
local degraded = run("oauth-operator.dev/health/health.lua", resource(2, {observedGeneration = 2, conditions = {broken}}))
check("health: Degraded carries the condition message", degraded.message == "key rejected", degraded.message)

local actions = run("oauth-operator.dev/actions/discovery.lua", resource(1, nil))
check("actions: rotate is offered", actions.rotate ~= nil and actions.rotate.disabled == false, "missing")
local rotated = run("oauth-operator.dev/actions/rotate/action.lua", resource(1, nil))
local value = rotated.metadata.annotations["oauth-operator.dev/rotate"]
check("actions: rotate sets the annotation to a timestamp",
  value ~= nil and value:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$") ~= nil, value)
local kept = {metadata = {name = "web", annotations = {team = "a"}}}
local kept_rotated = run("oauth-operator.dev/actions/rotate/action.lua", kept)
check("actions: rotate keeps other annotations", kept_rotated.metadata.annotations.team == "a", "lost")

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
