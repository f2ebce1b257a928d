// Being built (issue 13): this view is not on the board yet.
export const view = null;
