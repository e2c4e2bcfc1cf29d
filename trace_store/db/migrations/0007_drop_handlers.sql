-- The `handlers` table (0001) recorded the handlers each serve process loaded, but
-- nothing ever read it: the editor lists the handlers of the loaded canvases.
DROP TABLE IF EXISTS handlers;
