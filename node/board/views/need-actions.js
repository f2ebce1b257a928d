// Being built (issue 13): what a member can do with a need (claim, accept, record, hours).
/** The controls for `need` on the list, or `null`. */
export function actionsFor(_need) {
  return null;
}
